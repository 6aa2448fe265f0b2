/** The `vlmesh` command line: dispatches sub-commands and turns typed errors into exit codes. */
import { VlmeshError } from '../../shared/errors.ts';
import { benchCommand } from './bench.ts';
import { chatCommand } from './chat.ts';
import { doctorCommand } from './doctor.ts';
import { evalCaseCommand } from './eval-case.ts';
import { pullCommand } from './pull.ts';
import { serveCommand } from './serve.ts';
import { joinCommand } from './join.ts';
import { synthCommand } from './synth.ts';

const USAGE = `usage: vlmesh <command> [options]

commands:
  serve   [--model M] [--host H] [--port P] [--api-key K]... [--dtype f32|f16|q4] [--served-model-name N]
          [--max-body-mb MB] [--max-tokens N] [--media-allow-host HOST|CIDR]... [--media-timeout-s S]
          [--max-image-mb MB] [--max-image-pixels N] [--max-video-mb MB] [--max-video-s S] [--api-keys-file F] [--rate-limit N]
          [--max-queue N] [--max-model-len N] [--max-num-seqs N] [--kv-cache-mb MB] [--no-prefix-cache]
          [--session-ttl-s S] [--vision-cache-mb MB] [--vision-cache-ttl-s S] [--redis-url URL] [--no-vision-cache]
          [--fallback-url URL] [--fallback-api-key K] [--fallback-model NAME] [--fallback-timeout-s S]
          [--fallback-probe-s S] [--kiosk] [--kiosk-idle-s S] [--mesh-token T] [--mesh-only]
                                    serve the OpenAI-compatible API and the web page (default 127.0.0.1:8080);
                                    what this node cannot serve goes to the --fallback-url upstream
  bench   [kernels|model|ort|all] [--json] [--size tiny|2b|4b|8b] [--quick] [--skip-vision] [--no-ort] [--repeats N]
                                    measure this adapter (FMA peak, copy bandwidth), matmul/attention kernels, a synth
                                    model (TTFT, prefill, decode at batch 1/4/16, vision, memory) against those roofs, and
                                    onnxruntime-web's WebGPU MatMul vs ours in Chromium
  bench serve [--url URL] [--model NAME] [--api-key K] [--requests N] [--concurrency C] [--max-tokens T]
          [--prompt TEXT] [--follow-up TEXT] [--image FILE] [--turns K] [--session] [--temperature T] [--timeout-s S] [--allow-remote] [--json]
                                    load-test a running OpenAI-compatible server on loopback (TTFT, ITL, TPOT, throughput)
  join    --coordinator URL --token T --model M [--dtype f32|f16] [--memory-mb N] [--throughput N] [--bind-address A] [--id ID]
                                    serve decoder layers for a mesh coordinator (vlmesh serve --mesh-token T) from this machine
  doctor  [--json]                  show the WebGPU adapter, its features, limits and kernel variants
  chat    --model DIR [--image FILE]... [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--dtype f32|f16|q4] "prompt"
                                    one chat turn, streamed
  eval-case --model DIR --case CASE.json --out OUT.json [--dtype f32|f16|q4]
                                    run a golden case's inputs through the model (f32 unless --dtype) and write its outputs
  pull    REPO_ID [--revision R] [--cache-dir D] [--endpoint URL] [--token T]
                                    download a Hugging Face model repo into the hub cache; prints its snapshot dir
  synth   --size tiny|2b|4b|8b --out DIR [--seed S]
                                    write a random-weight checkpoint with the real shapes and tokenizer
  help                              this text
`;

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  serve: serveCommand,
  bench: benchCommand,
  join: joinCommand,
  doctor: doctorCommand,
  'eval-case': evalCaseCommand,
  chat: chatCommand,
  synth: synthCommand,
  pull: pullCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(USAGE);
    return cmd ? 0 : 2;
  }
  const run = COMMANDS[cmd];
  if (!run) {
    process.stderr.write(`vlmesh: unknown command "${cmd}"\n\n${USAGE}`);
    return 2;
  }
  // `vlmesh serve --help` and the like: the options of every command are in the usage text.
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    return await run(rest);
  } catch (e) {
    if (e instanceof VlmeshError) {
      process.stderr.write(`vlmesh ${cmd}: ${e.message} [${e.code}]\n`);
      return e.code === 'USAGE' ? 2 : 1;
    }
    throw e;
  }
}
