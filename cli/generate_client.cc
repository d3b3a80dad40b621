#include "cli/generate_client.h"

#include <vector>

namespace strata::cli {

GenerateCall::GenerateCall(std::shared_ptr<grpc::Channel> channel, grpc::ClientContext* context,
                           const v1::GenerateRequest& request,
                           std::function<void(const v1::GenerateResponse&)> on_response)
    : stub_(std::move(channel)), context_(context), on_response_(std::move(on_response)) {
  const std::string bytes = request.SerializeAsString();
  grpc::Slice slice(bytes);
  request_ = grpc::ByteBuffer(&slice, 1);
  // A server-streaming method on the wire: one request message, then half-close.
  stub_.PrepareBidiStreamingCall(context, "/strata.v1.Generation/Generate", grpc::StubOptions(), this);
  StartWrite(&request_, grpc::WriteOptions().set_last_message());
  StartRead(&response_);
  StartCall();
}

grpc::Status GenerateCall::Await() {
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return done_; });
  return parse_error_.empty() ? status_ : grpc::Status(grpc::StatusCode::INTERNAL, parse_error_);
}

void GenerateCall::OnReadDone(bool ok) {
  if (!ok) return;  // end of the stream: OnDone follows
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (response_.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  v1::GenerateResponse response;
  if (!response.ParseFromString(bytes)) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      parse_error_ =
          "the server sent a GenerateResponse that does not parse (for example invalid UTF-8 in a string field)";
    }
    context_->TryCancel();
    return;
  }
  on_response_(response);
  StartRead(&response_);
}

void GenerateCall::OnDone(const grpc::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  status_ = status;
  done_ = true;
  done_cv_.notify_all();
}

}  // namespace strata::cli
