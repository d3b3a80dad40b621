// External cross-check: greedy generation with llama.cpp (via node-llama-cpp's prebuilt
// CPU binaries), to compare with tools/reference/ref_model.py.
//
// How to run (node >= 20; nothing is downloaded from GitHub, the npm package ships
// prebuilt llama.cpp binaries in @node-llama-cpp/linux-x64):
//   mkdir -p /tmp/nlc && cd /tmp/nlc && npm init -y && npm install node-llama-cpp
//   cd /work/main && NLC_DIR=/tmp/nlc node tools/reference/llamacpp_check.mjs \
//       /work/shared/models/stories260K.gguf "Once upon a time" 200 > /tmp/llamacpp.json
// node-llama-cpp is resolved from $NLC_DIR (default /tmp/nlc); never install it in the repo.
//
// Prints JSON: {prompt_ids, ids (stopped before EOS), ids_ignore_eos, text, step0_logprobs}
// Env: KV_TYPE (F32|F16, default F32), FLASH_ATTN (0|1, default 0), LOGPROBS_OUT (see below).
// step0_logprobs: log-probabilities of ids 0..15 at the first generated position
// (temperature 1, no top-k/top-p), comparable to the reference's first_logits up to a
// constant (log-softmax shift).

import { createRequire } from "node:module";
import path from "node:path";

const nlcDir = process.env.NLC_DIR || "/tmp/nlc";
const require = createRequire(path.join(nlcDir, "package.json"));
const { getLlama, LlamaLogLevel } = await import(require.resolve("node-llama-cpp"));

const [modelPath, prompt = "Once upon a time", maxTokensArg = "200"] = process.argv.slice(2);
const maxTokens = parseInt(maxTokensArg, 10);
// By default node-llama-cpp uses flash attention ("auto" -> on for CPU) and an F16 KV
// cache; both round Q/K/V to f16 and move logits by up to ~1e-2 from an exact float64
// reference. The defaults here (KV_TYPE=F32, FLASH_ATTN=0) keep attention in float32;
// then stories260K logits agree with ref_model.py to ~3e-6.
const kvType = process.env.KV_TYPE || "F32";
const flashAttention = process.env.FLASH_ATTN === "1";
const ctxOptions = { contextSize: 512, batchSize: 512, threads: 1, flashAttention,
                     experimentalKvCacheKeyType: kvType, experimentalKvCacheValueType: kvType };

// CPU only, prebuilt binaries only: never build, never download.
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true,
                               logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath });

// Tokenize with llama.cpp's SPM tokenizer; add BOS like the reference does.
const textIds = Array.from(model.tokenize(prompt));
const promptIds = model.tokens.shouldPrependBosToken ? [model.tokens.bos, ...textIds] : textIds;  // gpt2 files add no BOS

async function generate(stopAtEos) {
    const ctx = await model.createContext(ctxOptions);
    const seq = ctx.getSequence();
    const out = [];
    // temperature 0 => greedy argmax in llama.cpp's sampler.
    for await (const t of seq.evaluate(promptIds, { temperature: 0 })) {
        if (stopAtEos && t === model.tokens.eos) break;
        out.push(t);
        if (out.length >= maxTokens) break;
    }
    await ctx.dispose();
    return out;
}

// Log-probabilities of ids 0..n-1 for the token after `inputIds` (fresh context each call).
async function nextLogProbs(inputIds, n) {
    const ctx = await model.createContext(ctxOptions);
    const seq = ctx.getSequence();
    let lp = null;
    for await (const r of seq.evaluateWithMetadata(inputIds, { probabilities: true },
                                                   { temperature: 1, topK: 0, topP: 1, minP: 0 })) {
        lp = [];
        for (let i = 0; i < n; i++) lp.push(Math.log(r.probabilities.get(i) ?? 0));
        break;
    }
    await ctx.dispose();
    return lp;
}

const ids = await generate(true);
const idsIgnoreEos = await generate(false);
const logprobs = await nextLogProbs(promptIds, 16);

// LOGPROBS_OUT=file.json: full log-probability rows for every step of the greedy run
// (steps x n_vocab), to compare with ref_model.py --dump-logits up to a per-row shift.
if (process.env.LOGPROBS_OUT) {
    const fs = await import("node:fs");
    const nVocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
    const rows = [];
    for (let k = 0; k < idsIgnoreEos.length; k++)
        rows.push(await nextLogProbs([...promptIds, ...idsIgnoreEos.slice(0, k)], nVocab));
    fs.writeFileSync(process.env.LOGPROBS_OUT, JSON.stringify(rows));
}

console.log(JSON.stringify({
    prompt, kv_cache_type: kvType, flash_attention: flashAttention, prompt_ids: promptIds, ids, ids_ignore_eos: idsIgnoreEos,
    text: model.detokenize(ids), step0_logprobs: logprobs,
}));
await model.dispose();
await llama.dispose();
