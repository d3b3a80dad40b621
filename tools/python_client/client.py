#!/usr/bin/python3
"""An independent client of a strata server, written against the protos alone (no strata code).

It generates its Python stubs at start-up from the repository's proto/ and the standard gRPC
protos (Debian: grpc-proto) with the system protoc and grpc_python_plugin, so it always speaks
the protos of the checkout it runs from. Needs Debian's python3-grpcio and python3-protobuf:
run it with /usr/bin/python3.

    client.py --server HOST:PORT health [--service NAME]     # grpc.health.v1 Check
    client.py --server HOST:PORT services                    # server reflection: list services
    client.py --server HOST:PORT describe SERVICE            # reflection: a service's methods
    client.py --server HOST:PORT model-info                  # GetModelInfo as JSON
    client.py --server HOST:PORT generate --prompt TEXT [--max-tokens N] [--temperature X]
              [--top-p P] [--seed S] [--ignore-eos] [--json] [--timeout SECONDS]

Exit status: 0 on success (for health: SERVING), 1 on any failure (a gRPC error is printed as
"CODE: message"), 2 on bad usage.
"""

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STANDARD_PROTOS = {  # the module name each standard proto is compiled under (flat, see load_stubs)
    "grpc/health/v1/health.proto": "health",
    "grpc/reflection/v1alpha/reflection.proto": "reflection",
}


def load_stubs(args):
    """Compiles the protos into a temporary directory and imports the generated modules.

    The standard protos are copied flat (health.proto, reflection.proto) before compiling: their
    own paths (grpc/...) would make Python look for the generated modules inside the installed
    grpc package. Their proto package names, and so the method names on the wire, stay the same.
    """
    try:
        import grpc  # noqa: F401
        import google.protobuf  # noqa: F401
    except ImportError as e:
        sys.exit(f"client.py: {e}: install python3-grpcio and python3-protobuf and run with /usr/bin/python3")
    out = tempfile.mkdtemp(prefix="strata_pyclient_")
    flat = os.path.join(out, "flat")
    os.makedirs(flat)
    for path, name in STANDARD_PROTOS.items():
        src = os.path.join(args.grpc_proto_dir, path)
        if not os.path.exists(src):
            sys.exit(f"client.py: {src} not found (Debian: apt-get install grpc-proto)")
        shutil.copy(src, os.path.join(flat, name + ".proto"))
    protoc = [args.protoc, f"--plugin=protoc-gen-grpc_python={args.grpc_python_plugin}",
              f"--python_out={out}", f"--grpc_python_out={out}"]
    for cmd in (protoc + [f"-I{os.path.join(args.proto_dir)}", "strata/v1/generation.proto"],
                protoc + [f"-I{flat}", "health.proto", "reflection.proto"]):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as e:
            sys.exit(f"client.py: cannot run {cmd[0]}: {e}")
        if r.returncode != 0:
            sys.exit(f"client.py: {' '.join(cmd)} failed:\n{r.stderr}")
    sys.path.insert(0, out)
    mods = {name: importlib.import_module(name) for name in
            ("strata.v1.generation_pb2", "strata.v1.generation_pb2_grpc", "health_pb2", "health_pb2_grpc",
             "reflection_pb2", "reflection_pb2_grpc")}
    shutil.rmtree(out, ignore_errors=True)  # everything is imported
    return mods


def rpc_error(e):
    print(f"client.py: {e.code().name}: {e.details()}", file=sys.stderr)
    return 1


def cmd_health(channel, m, args):
    stub = m["health_pb2_grpc"].HealthStub(channel)
    resp = stub.Check(m["health_pb2"].HealthCheckRequest(service=args.service), timeout=args.timeout)
    status = m["health_pb2"].HealthCheckResponse.ServingStatus.Name(resp.status)
    print(status)
    return 0 if status == "SERVING" else 1


def reflection_call(channel, m, **request):
    stub = m["reflection_pb2_grpc"].ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([m["reflection_pb2"].ServerReflectionRequest(**request)]),
                                          timeout=30)
    for resp in responses:
        responses.cancel()  # one answer is all we asked for
        if resp.HasField("error_response"):
            raise SystemExit(f"client.py: reflection error {resp.error_response.error_code}: "
                             f"{resp.error_response.error_message}")
        return resp
    raise SystemExit("client.py: reflection returned nothing")


def cmd_services(channel, m, args):
    resp = reflection_call(channel, m, list_services="")
    for s in sorted(s.name for s in resp.list_services_response.service):
        print(s)
    return 0


def cmd_describe(channel, m, args):
    from google.protobuf import descriptor_pb2
    resp = reflection_call(channel, m, file_containing_symbol=args.service)
    package, _, name = args.service.rpartition(".")
    for blob in resp.file_descriptor_response.file_descriptor_proto:
        fd = descriptor_pb2.FileDescriptorProto.FromString(blob)
        if fd.package != package:
            continue
        for service in fd.service:
            if service.name != name:
                continue
            print(f"service {args.service} (from {fd.name})")
            for method in service.method:
                kind = {(False, False): "unary", (False, True): "server streaming",
                        (True, False): "client streaming", (True, True): "bidi streaming"}[
                    (method.client_streaming, method.server_streaming)]
                print(f"  rpc {method.name}({method.input_type.lstrip('.')}) returns "
                      f"({method.output_type.lstrip('.')}): {kind}")
            return 0
    raise SystemExit(f"client.py: reflection has no service {args.service}")


def cmd_model_info(channel, m, args):
    from google.protobuf import json_format
    stub = m["strata.v1.generation_pb2_grpc"].GenerationStub(channel)
    info = stub.GetModelInfo(m["strata.v1.generation_pb2"].GetModelInfoRequest(), timeout=args.timeout)
    print(json.dumps(json_format.MessageToDict(info, preserving_proto_field_name=True), sort_keys=True))
    return 0


def cmd_generate(channel, m, args):
    pb = m["strata.v1.generation_pb2"]
    stub = m["strata.v1.generation_pb2_grpc"].GenerationStub(channel)
    req = pb.GenerateRequest(text=args.prompt, ignore_eos=args.ignore_eos)
    if args.max_tokens is not None:
        req.max_new_tokens = args.max_tokens
    # proto3 optional: only what was given is set, so the server's defaults apply to the rest.
    for field in ("temperature", "top_p", "seed"):
        value = getattr(args, field)
        if value is not None:
            setattr(req.sampling, field, value)
    finish = None
    for resp in stub.Generate(req, timeout=args.timeout):
        for t in resp.tokens:
            if args.json:
                print(json.dumps({"id": t.id, "text": t.text}, ensure_ascii=False), flush=True)
            else:
                print(t.text, end="", flush=True)
        if resp.finish_reason != pb.FINISH_REASON_UNSPECIFIED:
            finish = resp
    if finish is None:
        print("client.py: the stream ended without a finish reason", file=sys.stderr)
        return 1
    reason = pb.FinishReason.Name(finish.finish_reason).removeprefix("FINISH_REASON_").lower()
    if args.json:
        print(json.dumps({"finish_reason": reason, "request_id": finish.request_id,
                          "usage": {"prompt_tokens": finish.usage.prompt_tokens,
                                    "completion_tokens": finish.usage.completion_tokens}}))
    else:
        print()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True, help="HOST:PORT of a strata server")
    p.add_argument("--timeout", type=float, default=60, help="seconds per call (default 60)")
    p.add_argument("--proto-dir", default=os.path.join(REPO, "proto"), help="strata's protos (default: the repo's)")
    p.add_argument("--grpc-proto-dir", default="/usr/share/grpc-proto", help="the standard gRPC protos")
    p.add_argument("--protoc", default=shutil.which("protoc") or "/usr/bin/protoc")
    p.add_argument("--grpc-python-plugin", default="/usr/bin/grpc_python_plugin")
    sub = p.add_subparsers(dest="command", required=True)
    h = sub.add_parser("health", help="grpc.health.v1 Check")
    h.add_argument("--service", default="", help='service name ("" = the whole server)')
    sub.add_parser("services", help="list services (server reflection)")
    d = sub.add_parser("describe", help="a service's methods (server reflection)")
    d.add_argument("service")
    sub.add_parser("model-info", help="GetModelInfo")
    g = sub.add_parser("generate", help="stream a generation")
    g.add_argument("--prompt", required=True)
    g.add_argument("--max-tokens", type=int)
    g.add_argument("--temperature", type=float)
    g.add_argument("--top-p", type=float)
    g.add_argument("--seed", type=int)
    g.add_argument("--ignore-eos", action="store_true")
    g.add_argument("--json", action="store_true", help="one JSON object per token, then the finish line")
    args = p.parse_args()

    m = load_stubs(args)
    import grpc
    commands = {"health": cmd_health, "services": cmd_services, "describe": cmd_describe,
                "model-info": cmd_model_info, "generate": cmd_generate}
    with grpc.insecure_channel(args.server) as channel:
        try:
            return commands[args.command](channel, m, args)
        except grpc.RpcError as e:
            return rpc_error(e)


if __name__ == "__main__":
    sys.exit(main())
