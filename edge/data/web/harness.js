// Measures one model variant in one backend; driven by Playwright through window.edgeHarness.
//
// window.edgeHarness = { ready, run(config), benchmarkIndex(ms), facts(), prepare(config),
//   timeRuns(n), release(), litertCheck(), ortCheck() }; the title becomes
// 'ready' once the runtimes are loaded.
//
// config: { runtime: 'tfjs-wasm' | 'tfjs-webgl' | 'tfjs-webgpu' | 'tflite-web' | 'litertjs-wasm'
//             | 'litertjs-webgpu' | 'ort-wasm' | 'ort-webgpu',
//   modelUrl: '.../model.json' (graph model), '.../model.tflite' or '.../model.onnx',
//   input: { shape: [1, H, W, 3], dtype: 'float32' | 'int8' | 'uint8', mean: [r, g, b],
//            std: [r, g, b], scale, zeroPoint },          // scale/zeroPoint for int8/uint8 inputs
//   output: { scale, zeroPoint } or a list, one per output // optional, dequantizes tflite outputs
//   imagesUrl: raw uint8 RGB images, N*H*W*3 bytes (optional; else a fixed synthetic image),
//   returnOutputs: how many images' outputs to return (default 0),
//   protocol: the fields of edgeStopping.DEFAULTS (stopping.js, loaded first),
//   wasmThreads, flags (tf.env() flags),
//   pse: { kernels, threshold, minKernelArea, minArea, runs } (optional), loadTimeoutMs }
//
// run(config) always resolves with { runtime, backend, tfjsVersion, inputSynthetic, loadMs,
//   firstInferenceMs, warmupMs, samplesMs, steady (the warm-up settled),
//   stopReason ('ci' | 'max_runs' | 'max_seconds'), memory, facts,
//   outputs: [{ image, output, shape, dtype: 'float32', b64, note? }],
//   pse: { ms, samplesMs, boxes, regions } | null, error: string | null, unsupported }.
// Timings are milliseconds (performance.now()); b64 holds little-endian float32 values.
// LiteRT.js ('litertjs-*': @litertjs/core, an ES module loaded on first use through the page's
// import map) runs .tflite models as a CompiledModel; its tensors are freed by hand, and its
// facts (version, WASM build, threads) are facts().litert.
// ONNX Runtime Web ('ort-*': onnxruntime-web's WASM-only ES module, or its WebGPU build for
// 'ort-webgpu', loaded on first use) runs .onnx models in an InferenceSession on its WASM (or
// WebGPU) execution provider with env.wasm.numThreads = wasmThreads (set before its WASM
// initialises, once per page); its facts are facts().ort.
// The backend is selected and checked (never a silent fallback); every inference is timed up to
// the download of its output data, so asynchronous GPU work is included.
(function () {
  'use strict';

  const WASM_DIR = '/node_modules/@tensorflow/tfjs-backend-wasm/dist/';
  const TFLITE_DIR = '/node_modules/@tensorflow/tfjs-tflite/wasm/';
  const BACKENDS = { 'tfjs-wasm': 'wasm', 'tfjs-webgl': 'webgl', 'tfjs-webgpu': 'webgpu', 'tflite-web': 'cpu' };
  const LITERT_CORE = '/node_modules/@litertjs/core/dist/index.js';
  const LITERT_WASM_DIR = '/node_modules/@litertjs/core/wasm/';
  // LiteRT.js runtime -> its accelerator (loadAndCompile's `accelerator`).
  const LITERT_ACCELERATORS = { 'litertjs-wasm': 'wasm', 'litertjs-webgpu': 'webgpu' };
  const isLiteRt = (config) => Object.prototype.hasOwnProperty.call(LITERT_ACCELERATORS, config.runtime);
  // Runtime -> onnxruntime-web's ES module: the WASM-only build, or the WebGPU one (JSEP).
  const ORT_MODULES = {
    'ort-wasm': '/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs',
    'ort-webgpu': '/node_modules/onnxruntime-web/dist/ort.webgpu.min.mjs',
  };
  const ORT_WASM_DIR = '/node_modules/onnxruntime-web/dist/';
  // ONNX Runtime Web runtime -> its execution provider.
  const ORT_PROVIDERS = { 'ort-wasm': 'wasm', 'ort-webgpu': 'webgpu' };
  const isOrt = (config) => Object.prototype.hasOwnProperty.call(ORT_PROVIDERS, config.runtime);
  const QUANT_RANGE = { int8: [-128, 127], uint8: [0, 255] };
  // (module (func (result v128) i32.const 0 i8x16.splat i8x16.popcnt)): valid only with SIMD.
  const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1,
    0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

  let wasmThreadsConfigured = null;
  let tfliteThreadsConfigured = null;
  // LiteRT.js once loaded in this page: { module, liteRt, version, build, error }; live counts
  // the tensors the harness made and has not deleted yet (its leak check).
  let litert = null;
  const litertLive = { tensors: 0, bytes: 0 };
  let litertThreadsConfigured = null;
  let litertAccelerator = null;
  // ONNX Runtime Web once loaded in this page: { ort, version, provider, threadsConfigured,
  // error }; live counts the tensors the harness made and has not disposed yet.
  let ortState = null;
  const ortLive = { tensors: 0, bytes: 0 };
  let benchmarkSink = 0;

  const now = () => performance.now();

  function describe(err) {
    const message = err && err.message ? err.message : String(err);
    const frame = err && err.stack ? err.stack.split('\n').find((l) => /^\s+at\s/.test(l)) : null;
    return frame ? `${message} (${frame.trim()})` : message;
  }

  function withTimeout(promise, ms, what) {
    let timer;
    const limit = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    });
    return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
  }

  function median(values) {
    const s = [...values].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length === 0 ? null : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  }

  // ---- inputs ------------------------------------------------------------------------------

  // numpy's np.round: halves go to the even neighbour.
  function roundHalfEven(x) {
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  function syntheticPixels(count) {
    const pixels = new Uint8Array(count);
    let state = 12345;
    for (let i = 0; i < count; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      pixels[i] = state >>> 24;
    }
    return pixels;
  }

  // One image's uint8 RGB pixels -> a [1, H, W, 3] tensor: (pixel - mean) / std, then quantized
  // as q = clamp(round(x / scale + zeroPoint)) for int8/uint8 inputs (carried as int32). Every
  // step is rounded to float32 (Math.fround) as numpy does, so the same pixels give the same q.
  function inputTensor(spec, pixels, runtime) {
    const f = Math.fround;
    const mean = (spec.mean || [0, 0, 0]).map(f);
    const std = (spec.std || [1, 1, 1]).map(f);
    const x = new Float32Array(pixels.length);
    for (let i = 0; i < pixels.length; i++) x[i] = f(pixels[i] - mean[i % 3]) / std[i % 3];
    const range = QUANT_RANGE[spec.dtype];
    if (runtime && isOrt({ runtime })) {
      if (range) throw new Error(`ONNX Runtime Web inputs here are float32, not ${spec.dtype}`);
      return ortTrack(new ortState.ort.Tensor('float32', x, spec.shape), x.byteLength);
    }
    const lite = runtime && isLiteRt({ runtime });
    if (!range) return lite ? litertTensor(x, spec.shape) : tf.tensor(x, spec.shape, 'float32');
    if (!spec.scale) throw new Error(`input dtype ${spec.dtype} needs input.scale`);
    const scale = f(spec.scale);
    const zero = spec.zeroPoint || 0;
    const q = new Int32Array(x.length);
    for (let i = 0; i < x.length; i++) {
      q[i] = Math.min(range[1], Math.max(range[0], roundHalfEven(f(f(x[i] / scale) + zero))));
    }
    if (lite) return litertTensor(spec.dtype === 'uint8' ? Uint8Array.from(q) : Int8Array.from(q), spec.shape);
    return tf.tensor(q, spec.shape, 'int32');
  }

  async function loadImages(config) {
    const perImage = config.input.shape.slice(1).reduce((a, b) => a * b, 1);
    if (!config.imagesUrl) return { count: 1, synthetic: true, at: () => syntheticPixels(perImage) };
    const response = await fetch(config.imagesUrl);
    if (!response.ok) throw new Error(`images: HTTP ${response.status} for ${config.imagesUrl}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (bytes.length === 0 || bytes.length % perImage !== 0) {
      throw new Error(`images: ${bytes.length} bytes is not a whole number of ${perImage}-byte images`);
    }
    return { count: bytes.length / perImage, synthetic: false, at: (i) => bytes.subarray(i * perImage, (i + 1) * perImage) };
  }

  // ---- backend and model -------------------------------------------------------------------

  async function webgpuProbe() {
    if (!navigator.gpu) return { available: false, error: 'navigator.gpu is missing' };
    try {
      const adapter = await withTimeout(navigator.gpu.requestAdapter(), 5000, 'requestAdapter');
      if (!adapter) return { available: false, error: 'requestAdapter() returned null' };
      const info = adapter.info || (adapter.requestAdapterInfo ? await adapter.requestAdapterInfo() : {});
      return {
        available: true,
        isFallbackAdapter: adapter.isFallbackAdapter ?? info.isFallbackAdapter ?? null,
        vendor: info.vendor || null,
        architecture: info.architecture || null,
        device: info.device || null,
        description: info.description || null,
      };
    } catch (err) {
      return { available: false, error: describe(err) };
    }
  }

  // Why a WebGPU runtime cannot run here (no adapter), or null: never a silent fallback to the
  // CPU, no adapter means no cell.
  async function webgpuMissing() {
    const probe = await webgpuProbe();
    return probe.available ? null : `backend webgpu unavailable: ${probe.error}`;
  }

  async function selectBackend(config) {
    if (isLiteRt(config)) return selectLiteRt(config);
    if (isOrt(config)) return selectOrt(config);
    const name = BACKENDS[config.runtime];
    if (!name) throw new Error(`unknown runtime ${JSON.stringify(config.runtime)}; expected one of ${[...Object.keys(BACKENDS), ...Object.keys(LITERT_ACCELERATORS), ...Object.keys(ORT_PROVIDERS)].join(', ')}`);
    for (const [flag, value] of Object.entries(config.flags || {})) tf.env().set(flag, value);
    if (name === 'wasm' && config.wasmThreads != null) {
      tf.wasm.setThreadsCount(config.wasmThreads);
      wasmThreadsConfigured = config.wasmThreads;
    }
    let reason = null;
    try {
      if (!(await tf.setBackend(name))) reason = 'setBackend returned false';
      await tf.ready();
    } catch (err) {
      reason = describe(err);
    }
    if (!reason && tf.getBackend() !== name) reason = `tf.getBackend() is ${tf.getBackend()}`;
    if (reason && name === 'webgpu') {
      const probe = await webgpuProbe();
      if (probe.error) reason += `; ${probe.error}`;
    }
    return reason ? `backend ${name} unavailable: ${reason}` : null;
  }

  async function loadModel(config) {
    if (isLiteRt(config)) return loadLiteRtModel(config);
    if (isOrt(config)) return loadOrtModel(config);
    if (config.runtime !== 'tflite-web') return tf.loadGraphModel(config.modelUrl);
    // Without wasmThreads the interpreter's own default: half the reported cores.
    tfliteThreadsConfigured = config.wasmThreads ?? Math.max(1, Math.floor(navigator.hardwareConcurrency / 2));
    const options = { numThreads: tfliteThreadsConfigured };
    // The TFLite interpreter explains a rejected model only on the console: keep its ERROR lines.
    const errors = [];
    const original = { warn: console.warn, error: console.error };
    for (const level of ['warn', 'error']) {
      console[level] = (...args) => {
        const text = args.join(' ').trim();
        if (text.startsWith('ERROR:')) errors.push(text.slice(6).trim());
        original[level].apply(console, args);
      };
    }
    try {
      return await tflite.loadTFLiteModel(config.modelUrl, options);
    } catch (err) {
      if (errors.length) err.message = `${err.message}: ${errors.join('; ')}`;
      throw err;
    } finally {
      Object.assign(console, original);
    }
  }

  function disposeModel(model) {
    if (!model) return;
    if (model.litert) {
      model.compiled.delete();
      return;
    }
    if (model.ort) {
      model.session.release().catch(() => {});
      return;
    }
    if (typeof model.dispose === 'function') model.dispose();
    else if (model.modelRunner && typeof model.modelRunner.cleanUp === 'function') model.modelRunner.cleanUp();
  }

  function outputList(out) {
    if (out instanceof tf.Tensor) return [out];
    if (Array.isArray(out)) return out;
    return Object.keys(out).sort().map((k) => out[k]);
  }

  // Returns infer(x) -> Promise<{tensors, data}>: one inference, synced on the output download;
  // the caller disposes the tensors.
  function makeInfer(model) {
    if (model.litert) return litertInfer(model);
    if (model.ort) return ortInfer(model);
    let useAsync = false;
    return async function infer(x) {
      let out;
      if (useAsync) {
        out = await model.executeAsync(x);
      } else {
        try {
          out = model.predict(x);
        } catch (err) {
          if (typeof model.executeAsync !== 'function' || !/executeAsync/.test(String(err && err.message))) throw err;
          useAsync = true;
          out = await model.executeAsync(x);
        }
      }
      const tensors = outputList(out);
      const data = await Promise.all(tensors.map((t) => t.data()));
      return { tensors, data };
    };
  }

  // ---- LiteRT.js -----------------------------------------------------------------------------
  // @litertjs/core: loaded once per page on the first LiteRT.js cell (the threaded WASM build
  // where the page is cross-origin isolated), models compiled with loadAndCompile. Its public
  // Tensor type covers float32, int32 and uint8 only (2.5.x): a model with int8 inputs or
  // outputs (full-integer with int8 I/O) runs as the same compiled model through the package's
  // own WASM bindings, which the public API is a thin layer over.

  const LITERT_INT8 = 9;  // litert::ElementType::kInt8
  const backendName = (config) => (config.runtime === 'tflite-web' || isLiteRt(config) || isOrt(config) ? config.runtime : tf.getBackend());

  function disposeAll(tensors) {
    for (const t of tensors) t.dispose();
  }

  async function selectLiteRt(config) {
    litertAccelerator = LITERT_ACCELERATORS[config.runtime];
    if (litertAccelerator === 'webgpu') {
      const missing = await webgpuMissing();
      if (missing) return missing;
    }
    if (litert && litert.error) return `LiteRT.js unavailable: ${litert.error}`;
    if (litert) return null;
    litert = { module: null, liteRt: null, version: null, build: null, relaxedSimd: null, error: null };
    try {
      litert.module = await import(LITERT_CORE);
      // The build LiteRT.js picks from the directory: threaded (needs cross-origin isolation and
      // relaxed SIMD), else plain (relaxed SIMD), else compat.
      litert.relaxedSimd = await litert.module.supportsFeature('relaxedSimd');
      const threads = self.crossOriginIsolated === true && litert.relaxedSimd;
      litert.build = threads ? 'threaded' : litert.relaxedSimd ? 'plain' : 'compat';
      litert.liteRt = await withTimeout(litert.module.loadLiteRt(LITERT_WASM_DIR, { threads }), 60000, 'loadLiteRt');
      const pkg = await fetch('/node_modules/@litertjs/core/package.json');
      if (pkg.ok) litert.version = (await pkg.json()).version;
    } catch (err) {
      litert.error = describe(err);
      return `LiteRT.js unavailable: ${litert.error}`;
    }
    return null;
  }

  function litertThreads(config) {
    return config.wasmThreads ?? Math.max(1, Math.floor(navigator.hardwareConcurrency / 2));
  }

  function track(tensor, bytes) {
    litertLive.tensors += 1;
    litertLive.bytes += bytes;
    let deleted = false;
    tensor.dispose = () => {
      if (deleted) return;
      deleted = true;
      litertLive.tensors -= 1;
      litertLive.bytes -= bytes;
      tensor.delete();
    };
    return tensor;
  }

  // A host-memory LiteRT tensor of `values` (Float32Array, Uint8Array or Int8Array).
  function litertTensor(values, shape) {
    if (!(values instanceof Int8Array)) return track(new litert.module.Tensor(values, shape), values.byteLength);
    const w = litert.liteRt.liteRtWasm;
    const dims = new w.VectorInt32();
    for (const d of shape) dims.push_back(d);
    const layout = w.LiteRtLayout.create(dims);
    dims.delete();
    const type = w.LiteRtRankedTensorType.create({ value: LITERT_INT8 }, layout);
    layout.delete();
    const buffer = w.LiteRtTensorBuffer.createManaged(litert.liteRt.getDefaultEnvironment().liteRtEnvironment,
      w.LiteRtTensorBufferType.HOST_MEMORY, type, values.byteLength);
    type.delete();
    const ptr = buffer.lock(w.LiteRtTensorBufferLockMode.WRITE);
    try {
      w.HEAPU8.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), ptr);
    } finally {
      buffer.unlock();
    }
    return track({ liteRtTensorBuffer: buffer, delete: () => buffer.delete() }, values.byteLength);
  }

  function compileOptions(config) {
    litertThreadsConfigured = litertThreads(config);
    return { accelerator: LITERT_ACCELERATORS[config.runtime], cpuOptions: { numThreads: litertThreadsConfigured } };
  }

  async function loadLiteRtModel(config) {
    const response = await fetch(config.modelUrl);
    if (!response.ok) throw new Error(`model: HTTP ${response.status} for ${config.modelUrl}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const int8 = config.input.dtype === 'int8';
    if (!int8) {
      const compiled = await litert.liteRt.loadAndCompile(bytes, compileOptions(config));
      return { litert: true, bindings: false, compiled };
    }
    // The bindings' path, as loadAndCompile takes it, without the public wrapper's dtype table.
    const w = litert.liteRt.liteRtWasm;
    const env = litert.liteRt.getDefaultEnvironment();
    const ptr = w._malloc(bytes.byteLength);
    w.HEAPU8.set(bytes, ptr);
    let model = null;
    try {
      model = w.loadModel(env.liteRtEnvironment, ptr, bytes.byteLength);
      const options = { environment: env, gpuOptions: {}, webNNOptions: {}, ...compileOptions(config) };
      const native = await w.compileModel(env.liteRtEnvironment, model, options);
      const compiled = {
        delete() {
          native.delete();
          model.delete();
          w._free(ptr);
        },
      };
      return { litert: true, bindings: true, native, model, compiled };
    } catch (err) {
      if (model) model.delete();
      w._free(ptr);
      throw err;
    }
  }

  const LITERT_DTYPES = { 1: ['float32', Float32Array], 2: ['int32', Int32Array], 3: ['uint8', Uint8Array], 9: ['int8', Int8Array] };

  // One output buffer -> { tensor: {shape, dtype, dispose}, data } (a copy of its values);
  // `owner` is the public Tensor that holds the buffer, if any (deleting it deletes the buffer).
  function readBuffer(buffer, owner) {
    const w = litert.liteRt.liteRtWasm;
    const type = buffer.tensorType();
    const element = type.elementType().value;
    const layout = type.layout();
    const dims = layout.dimensions();
    const shape = [];
    for (let i = 0; i < dims.size(); i++) shape.push(dims.get(i));
    dims.delete();
    layout.delete();
    type.delete();
    const [dtype, Typed] = LITERT_DTYPES[element] || [];
    if (!Typed) throw new Error(`LiteRT.js output element type ${element} is not supported by the harness`);
    const ptr = buffer.lock(w.LiteRtTensorBufferLockMode.READ);
    let data;
    try {
      const copy = w.HEAPU8.slice(ptr, ptr + buffer.packedSize());
      data = new Typed(copy.buffer, 0, copy.byteLength / Typed.BYTES_PER_ELEMENT);
    } finally {
      buffer.unlock();
    }
    const tensor = track({ delete: () => (owner ? owner.delete() : buffer.delete()) }, data.byteLength);
    tensor.shape = shape;
    tensor.dtype = dtype;
    return { tensor, data };
  }

  function litertInfer(model) {
    return async function infer(x) {
      let read;
      if (model.bindings) {
        read = (await model.native.run(0, [x.liteRtTensorBuffer])).map((b) => readBuffer(b, null));
      } else {
        const outputs = await model.compiled.run([x]);
        // WebGPU outputs live on the GPU: read them back to WASM memory (part of the timed run).
        const host = await Promise.all(outputs.map((t) => (t.accelerator === 'wasm' ? t : t.moveTo('wasm'))));
        read = host.map((t) => readBuffer(t.liteRtTensorBuffer, t));
      }
      return { tensors: read.map((r) => r.tensor), data: read.map((r) => r.data) };
    };
  }

  function litertFacts() {
    if (!litert) return { loaded: false };
    let threadsUsed = null;
    try {
      threadsUsed = litert.liteRt.liteRtWasm.getThreadCount();
    } catch (err) {
      threadsUsed = null;
    }
    return {
      loaded: !litert.error && !!litert.liteRt, error: litert.error, version: litert.version,
      build: litert.build, relaxedSimd: litert.relaxedSimd ?? null, accelerator: litertAccelerator,
      threadsConfigured: litertThreadsConfigured,
      threadsUsed,  // the WASM module's thread pool (getThreadCount), null if unknown
    };
  }

  // ---- ONNX Runtime Web -----------------------------------------------------------------------
  // onnxruntime-web's WASM-only build: its WASM (SIMD, threaded where the page is cross-origin
  // isolated) is fetched from the local server on the first session; env.wasm.numThreads must be
  // set before that and holds for the page (each cell has a fresh one).

  async function selectOrt(config) {
    if (ortState && ortState.error) return `ONNX Runtime Web unavailable: ${ortState.error}`;
    if (ortState) return null;
    if (ORT_PROVIDERS[config.runtime] === 'webgpu') {
      const missing = await webgpuMissing();
      if (missing) return missing;
    }
    ortState = { ort: null, version: null, provider: ORT_PROVIDERS[config.runtime], threadsConfigured: null, error: null };
    try {
      const ort = await import(ORT_MODULES[config.runtime]);
      ort.env.wasm.wasmPaths = ORT_WASM_DIR;
      ort.env.wasm.proxy = false;
      if (config.wasmThreads != null) ort.env.wasm.numThreads = config.wasmThreads;
      ortState.threadsConfigured = config.wasmThreads ?? null;
      ortState.version = (ort.env.versions && ort.env.versions.web) || null;
      ortState.ort = ort;
    } catch (err) {
      ortState.error = describe(err);
      return `ONNX Runtime Web unavailable: ${ortState.error}`;
    }
    return null;
  }

  // A tensor (or a stand-in with dispose()) counted live until disposed: the leak check.
  function ortTrack(tensor, bytes) {
    ortLive.tensors += 1;
    ortLive.bytes += bytes;
    const own = tensor.dispose ? tensor.dispose.bind(tensor) : null;
    let live = true;
    tensor.dispose = () => {
      if (live) {
        live = false;
        ortLive.tensors -= 1;
        ortLive.bytes -= bytes;
      }
      if (own) own();
    };
    return tensor;
  }

  async function loadOrtModel(config) {
    const session = await ortState.ort.InferenceSession.create(config.modelUrl, {
      executionProviders: [ORT_PROVIDERS[config.runtime]], graphOptimizationLevel: 'all', executionMode: 'sequential',
    });
    return { ort: true, session, inputName: session.inputNames[0], outputNames: session.outputNames };
  }

  function ortInfer(model) {
    return async function infer(x) {
      const out = await model.session.run({ [model.inputName]: x });
      const data = model.outputNames.map((n) => out[n].data);
      const tensors = model.outputNames.map((n) => {
        const t = out[n];
        return ortTrack({ shape: Array.from(t.dims), dtype: t.type, dispose: () => t.dispose() }, t.data.byteLength);
      });
      return { tensors, data };
    };
  }

  function ortFacts() {
    if (!ortState) return { loaded: false };
    const env = ortState.ort ? ortState.ort.env.wasm : null;
    // The WASM files the page fetched from onnxruntime-web: which build ran.
    const wasmFiles = performance.getEntriesByType('resource').map((e) => e.name)
      .filter((u) => u.includes('/onnxruntime-web/') && u.endsWith('.wasm'))
      .map((u) => u.slice(u.lastIndexOf('/') + 1));
    return {
      loaded: !ortState.error && !!ortState.ort, error: ortState.error, version: ortState.version,
      executionProvider: ortState.provider,
      threadsConfigured: ortState.threadsConfigured,
      // env.wasm.numThreads once the WASM initialised: 1 where threads are unavailable.
      threadsEffective: env ? env.numThreads ?? null : null,
      proxy: env ? !!env.proxy : null,
      wasmFiles: [...new Set(wasmFiles)],
    };
  }

  // ---- memory ------------------------------------------------------------------------------

  function tfMemory(config) {
    if (config && isLiteRt(config)) return { numTensors: litertLive.tensors, numBytes: litertLive.bytes };
    if (config && isOrt(config)) return { numTensors: ortLive.tensors, numBytes: ortLive.bytes };
    const m = tf.memory();
    const keep = ['numTensors', 'numBytes', 'numBytesInGPU', 'numBytesInGPUAllocated', 'numBytesInGPUFree', 'numBytesAllocatedInGPU', 'unreliable'];
    return Object.fromEntries(keep.filter((k) => m[k] !== undefined).map((k) => [k, m[k]]));
  }

  function wasmHeapBytes(config, model) {
    try {
      if (config.runtime === 'tflite-web') return model.modelRunner.module.HEAPU8.byteLength;
      if (config.runtime === 'tfjs-wasm') return tf.backend().wasm.HEAPU8.byteLength;
      if (isLiteRt(config)) return litert.liteRt.liteRtWasm.HEAPU8.byteLength;
    } catch (err) {
      return null;
    }
    return null;
  }

  // Peak bytes of all live tensors while the kernels of one extra (untimed) inference ran.
  async function profilePeakBytes(infer, x) {
    try {
      let tensors = [];
      const info = await tf.profile(async () => {
        tensors = (await infer(x)).tensors;
      });
      tf.dispose(tensors);
      return info.peakBytes;
    } catch (err) {
      return null;
    }
  }

  function jsHeap() {
    const m = performance.memory;
    return m ? { usedJSHeapSize: m.usedJSHeapSize, totalJSHeapSize: m.totalJSHeapSize } : null;
  }

  // ---- outputs -----------------------------------------------------------------------------

  function float32Base64(values) {
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
  }

  // Float32 values of output k; quantized tflite outputs are dequantized with config.output
  // (one {scale, zeroPoint} or a list, one per output) when given, else returned raw.
  function outputValues(config, tensor, data, k) {
    const quantized = (config.runtime === 'tflite-web' && tensor.dtype === 'int32') ||
      (isLiteRt(config) && tensor.dtype !== 'float32');
    if (!quantized) return { values: Float32Array.from(data), dequantized: null };
    const specs = [].concat(config.output || []);
    const spec = specs[k] || null;
    if (!spec || !spec.scale) return { values: Float32Array.from(data), dequantized: false };
    const zero = spec.zeroPoint || 0;
    return { values: Float32Array.from(data, (q) => (q - zero) * spec.scale), dequantized: true };
  }

  function encodeOutputs(config, index, result) {
    return result.tensors.map((t, k) => {
      const { values, dequantized } = outputValues(config, t, result.data[k], k);
      const entry = { image: index, output: k, shape: t.shape, dtype: 'float32', b64: float32Base64(values) };
      if (dequantized === false) entry.note = 'raw quantized values: no output scale/zeroPoint given';
      return entry;
    });
  }

  function runPse(config, result) {
    const spec = config.pse;
    const t = result.tensors[0];
    const [, h, w, n] = t.shape;
    if (t.shape.length !== 4 || n !== spec.kernels) {
      throw new Error(`pse: output shape [${t.shape}] is not [1, H, W, ${spec.kernels}]`);
    }
    const maps = outputValues(config, t, result.data[0], 0).values;
    const opts = {
      threshold: spec.threshold ?? 0.5, minKernelArea: spec.minKernelArea ?? 5,
      minArea: spec.minArea ?? 10, minScore: spec.minScore ?? 0,
    };
    const samplesMs = [];
    let found = null;
    for (let i = 0; i < (spec.runs ?? 5); i++) {
      const t0 = now();
      found = edgePSE.detect(maps, h, w, n, opts);
      samplesMs.push(now() - t0);
    }
    // pse.js's box fields: rotated rectangle (cx, cy, w, h, angle, points) and axis-aligned bounds.
    const boxes = found.boxes.map((b) => ({
      label: b.label, area: b.area, score: b.score, cx: b.cx, cy: b.cy, w: b.w, h: b.h,
      angle: b.angle, points: b.points, x0: b.x0, y0: b.y0, x1: b.x1, y1: b.y1,
    }));
    return { ms: median(samplesMs), samplesMs, boxes: boxes.length, regions: boxes };
  }

  // ---- the measurement ---------------------------------------------------------------------

  // The fields of edgeStopping.DEFAULTS (stopping.js), camelCase or snake_case keys; missing
  // ones take their defaults. timeoutS is the caller's deadline and not used here.
  function readProtocol(given) {
    const defaults = window.edgeStopping.DEFAULTS;
    const protocol = Object.assign({}, defaults);
    for (const [key, value] of Object.entries(given)) {
      const name = key.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
      if (!(name in defaults) || typeof value !== 'number' || !(value >= 0)) {
        throw new Error(`protocol: bad entry ${key}=${JSON.stringify(value)}`);
      }
      protocol[name] = value;
    }
    return protocol;
  }

  async function run(config) {
    const result = {
      runtime: config && config.runtime, backend: null, tfjsVersion: tf.version.tfjs,
      inputSynthetic: null, loadMs: null, firstInferenceMs: null, warmupMs: [], samplesMs: [],
      memory: {}, facts: {}, outputs: [], pse: null, error: null, unsupported: false,
    };
    let model = null;
    let x = null;
    try {
      const protocol = readProtocol(config.protocol || {});
      const unavailable = await selectBackend(config);
      if (unavailable) {
        result.error = unavailable;
        result.unsupported = true;
        return result;
      }
      result.backend = backendName(config);
      const images = await loadImages(config);
      result.inputSynthetic = images.synthetic;
      x = inputTensor(config.input, images.at(0), config.runtime);

      const t0 = now();
      model = await withTimeout(loadModel(config), config.loadTimeoutMs ?? 120000, 'model load');
      result.loadMs = now() - t0;
      const infer = makeInfer(model);
      const before = tfMemory(config);
      let peakBytes = before.numBytes;
      let peakGpuBytes = before.numBytesInGPU ?? null;
      let last = null;
      const once = async () => {
        const start = now();
        const r = await infer(x);
        const ms = now() - start;
        const m = tfMemory(config);
        peakBytes = Math.max(peakBytes, m.numBytes);
        if (m.numBytesInGPU !== undefined) peakGpuBytes = Math.max(peakGpuBytes ?? 0, m.numBytesInGPU);
        last = { tensors: r.tensors.map((t) => ({ shape: t.shape, dtype: t.dtype })), data: r.data };
        disposeAll(r.tensors);
        return ms;
      };

      result.firstInferenceMs = await once();
      // The rules of stopping.js (edge/stopping.py): warm up until steady or a cap, then
      // time runs until the median's 95 % CI is narrow enough or a cap is reached.
      const { warmupDone, samplingDone } = window.edgeStopping;
      for (;;) {
        const [warm, steady] = warmupDone(result.warmupMs, protocol);
        if (warm) {
          result.steady = steady;
          break;
        }
        result.warmupMs.push(await once());
      }
      for (;;) {
        const [enough, reason] = samplingDone(result.samplesMs, protocol);
        if (enough) {
          result.stopReason = reason;
          break;
        }
        result.samplesMs.push(await once());
      }
      const after = tfMemory(config);
      result.memory = {
        before, after,
        leakedTensors: after.numTensors - before.numTensors,
        leakedBytes: after.numBytes - before.numBytes,
        tfLiveBytesAfterRunMax: peakBytes,  // sampled between runs: not a peak
        tfGpuBytesAfterRunMax: peakGpuBytes,
        tfProfilePeakBytes: config.runtime === 'tflite-web' || isLiteRt(config) || isOrt(config) ? null : await profilePeakBytes(infer, x),
        numBytesInGPUAllocated: after.numBytesInGPUAllocated ?? null,
        wasmHeapCapacityBytes: wasmHeapBytes(config, model),  // the heap's size, not its use
        jsHeap: jsHeap(),
      };
      if (config.pse) result.pse = runPse(config, last);

      const wanted = Math.min(config.returnOutputs || 0, images.count);
      for (let i = 0; i < wanted; i++) {
        const xi = i === 0 ? x : inputTensor(config.input, images.at(i), config.runtime);
        const r = await infer(xi);
        result.outputs.push(...encodeOutputs(config, i, r));
        disposeAll(r.tensors);
        if (xi !== x) xi.dispose();
      }
    } catch (err) {
      result.error = describe(err);
    } finally {
      try {
        if (x) x.dispose();
        disposeModel(model);
      } catch (err) {
        result.error = result.error || `cleanup: ${describe(err)}`;
      }
      try {
        result.facts = await facts();
      } catch (err) {
        result.facts = { error: describe(err) };
      }
    }
    return result;
  }

  // ---- calibration workload -----------------------------------------------------------------
  // The emulation's quota is calibrated on a model of the same runtime and thread count: load it
  // once (prepare), time a few runs at each quota the caller sets (timeRuns), then release.

  let calibration = null;

  async function prepare(config) {
    await release();
    const unavailable = await selectBackend(config);
    if (unavailable) throw new Error(unavailable);
    const images = await loadImages(config);
    const x = inputTensor(config.input, images.at(0), config.runtime);
    const model = await withTimeout(loadModel(config), config.loadTimeoutMs ?? 120000, 'model load');
    const infer = makeInfer(model);
    calibration = { model, x, infer };
    // First inference, then warm up until steady (stopping.js): the unthrottled time the
    // caller measures next must be the steady one, or every slowdown it derives is off.
    await timeRuns(1);
    const protocol = readProtocol(config.protocol || {});
    const warmup = [];
    for (;;) {
      const [warm, steady] = window.edgeStopping.warmupDone(warmup, protocol);
      if (warm) return { backend: backendName(config), warmupRuns: warmup.length, steady };
      warmup.push(...(await timeRuns(1)));
    }
  }

  async function timeRuns(n) {
    if (!calibration) throw new Error('timeRuns: call prepare(config) first');
    const samples = [];
    for (let i = 0; i < n; i++) {
      const start = now();
      const r = await calibration.infer(calibration.x);
      samples.push(now() - start);
      disposeAll(r.tensors);
    }
    return samples;
  }

  async function release() {
    if (!calibration) return;
    calibration.x.dispose();
    disposeModel(calibration.model);
    calibration = null;
  }

  // ---- facts and the benchmark index --------------------------------------------------------

  function flag(name) {
    try {
      return tf.env().get(name);
    } catch (err) {
      return null;
    }
  }

  function webglFacts() {
    const facts = {
      version: flag('WEBGL_VERSION'),
      renderFloat32Capable: flag('WEBGL_RENDER_FLOAT32_CAPABLE'),
      renderFloat32Enabled: flag('WEBGL_RENDER_FLOAT32_ENABLED'),
      downloadFloatEnabled: flag('WEBGL_DOWNLOAD_FLOAT_ENABLED'),
      forceF16Textures: flag('WEBGL_FORCE_F16_TEXTURES'),
      maxTextureSize: flag('WEBGL_MAX_TEXTURE_SIZE'),
      vendor: null, renderer: null, halfFloatColorBuffer: null, floatColorBuffer: null,
    };
    try {
      const gl = document.createElement('canvas').getContext('webgl2') || document.createElement('canvas').getContext('webgl');
      if (gl) {
        const debug = gl.getExtension('WEBGL_debug_renderer_info');
        facts.vendor = gl.getParameter(debug ? debug.UNMASKED_VENDOR_WEBGL : gl.VENDOR);
        facts.renderer = gl.getParameter(debug ? debug.UNMASKED_RENDERER_WEBGL : gl.RENDERER);
        facts.floatColorBuffer = !!gl.getExtension('EXT_color_buffer_float');
        facts.halfFloatColorBuffer = !!gl.getExtension('EXT_color_buffer_half_float');
        const lose = gl.getExtension('WEBGL_lose_context');
        if (lose) lose.loseContext();
      }
    } catch (err) {
      facts.error = describe(err);
    }
    return facts;
  }

  async function facts() {
    let threadsUsed = null;
    try {
      threadsUsed = tf.wasm.getThreadsCount();
    } catch (err) {
      threadsUsed = null;
    }
    let tfliteFeatures = null;
    try {
      tfliteFeatures = await withTimeout(tflite.getWasmFeatures(), 5000, 'tflite.getWasmFeatures');
    } catch (err) {
      tfliteFeatures = { error: describe(err) };
    }
    return {
      userAgent: navigator.userAgent,
      crossOriginIsolated: self.crossOriginIsolated === true,
      sharedArrayBuffer: typeof SharedArrayBuffer !== 'undefined',
      hardwareConcurrency: navigator.hardwareConcurrency,
      deviceMemory: navigator.deviceMemory ?? null,
      tfjsVersion: tf.version.tfjs,
      backend: tf.getBackend() || null,
      wasm: {
        simd: WebAssembly.validate(SIMD_PROBE),
        threadsConfigured: wasmThreadsConfigured,
        threadsUsed,  // what the backend reports (tf.wasm.getThreadsCount), null if nothing
        threadsUsedReported: threadsUsed !== null,
      },
      tflite: { features: tfliteFeatures, threadsConfigured: tfliteThreadsConfigured },
      litert: litertFacts(),
      ort: ortFacts(),
      webgl: webglFacts(),
      webgpu: await webgpuProbe(),
    };
  }

  // A fixed plain-JS workload (integer math and array writes) run for about `ms` milliseconds;
  // returns iterations per second. The code path is the same on every call.
  function benchmarkIndex(ms = 300) {
    const CHUNK = 10000;
    const buffer = new Int32Array(4096);
    let state = 1;
    let iterations = 0;
    let elapsed = 0;
    const t0 = now();
    do {
      for (let i = 0; i < CHUNK; i++) {
        state = (Math.imul(state, 1103515245) + 12345) | 0;
        buffer[(state >>> 20) & 4095] ^= state + i;
      }
      iterations += CHUNK;
      elapsed = now() - t0;
    } while (elapsed < ms);
    benchmarkSink ^= buffer[state & 4095];
    return (iterations * 1000) / elapsed;
  }

  // ---- start-up ----------------------------------------------------------------------------

  const ready = (async () => {
    for (const name of ['tf', 'tflite', 'edgePSE']) {
      if (typeof window[name] === 'undefined') throw new Error(`${name} did not load (run python -m edge.farm.runners.web_runtime)`);
    }
    tf.wasm.setWasmPaths(WASM_DIR);
    tflite.setWasmPath(TFLITE_DIR);
  })();

  // Whether LiteRT.js initialises in this page (loads its WASM build): its facts, error or null.
  async function litertCheck(runtime = 'litertjs-wasm') {
    const error = await selectLiteRt({ runtime });
    return { ...litertFacts(), error };
  }

  // Whether ONNX Runtime Web's module loads in this page: its facts, error or null.
  async function ortCheck(runtime = 'ort-wasm') {
    const error = await selectOrt({ runtime });
    return { ...ortFacts(), error, crossOriginIsolated: self.crossOriginIsolated === true };
  }

  window.edgeHarness = { ready, run, benchmarkIndex, facts, prepare, timeRuns, release, litertCheck, ortCheck };
  ready.then(
    () => { document.title = 'ready'; },
    (err) => { document.title = `error: ${describe(err)}`; },
  );
})();
