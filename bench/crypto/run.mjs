// Runs the wasm32-wasip1 build in node's V8 (pass --no-liftoff to node: Envoy runs TurboFan only).
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import { argv } from 'node:process';
const wasi = new WASI({ version: 'preview1', args: ['bench', ...argv.slice(3)], env: {} });
const mod = await WebAssembly.compile(await readFile(argv[2]));
const inst = await WebAssembly.instantiate(mod, wasi.getImportObject());
wasi.start(inst);
