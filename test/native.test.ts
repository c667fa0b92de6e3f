import { InternVLError } from '../lib/errors.js';
import { callNative, loadNative, loadNativeFrom, runtimeInfo } from '../lib/native.js';

// bf16 is the upper half of an IEEE-754 float32: widen by shifting through a
// DataView, independently of the addon's bit manipulation.
function widenReference(h: Uint16Array): Float32Array {
  const view = new DataView(new ArrayBuffer(4));
  return Float32Array.from(h, (x) => {
    view.setUint32(0, x << 16);
    return view.getFloat32(0);
  });
}

describe('native addon boundary', () => {
  test('info reports version, the CPU backend and a CUDA report', () => {
    const info = runtimeInfo();
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.backends).toContain('cpu');
    expect(typeof info.cuda.compiled).toBe('boolean');
    expect(Array.isArray(info.cuda.devices)).toBe(true);
    if (info.cuda.devices.length === 0) expect(info.backends).not.toContain('cuda');
    expect(info.hardwareConcurrency).toBeGreaterThan(0);
  });

  test('async call returns a typed array equal to an independent conversion', async () => {
    const n = 4096;
    const input = new Uint16Array(n);
    for (let i = 0; i < n; i++) input[i] = (i * 2654435761) >>> 16;
    input[0] = 0x7fc0; // NaN
    input[1] = 0x7f80; // +inf
    input[2] = 0x8000; // -0
    const out = await callNative((a) => a.bf16ToF32(input));
    // jest runs tests in a vm context, so compare the tag, not the constructor
    expect(Object.prototype.toString.call(out)).toBe('[object Float32Array]');
    expect(out.length).toBe(n);
    const ref = widenReference(input);
    expect(Number.isNaN(out[0])).toBe(true);
    expect(Object.is(out[2], -0)).toBe(true);
    for (let i = 1; i < n; i++) {
      if (Number.isNaN(ref[i])) expect(Number.isNaN(out[i])).toBe(true);
      else expect(out[i]).toBe(ref[i]);
    }
  });

  test('a native argument error reaches JS as InternVLError with a code and the caller stack', async () => {
    const a = loadNative();
    const caller = async function callerFrameForStackCheck() {
      return callNative(() => a.bf16ToF32(new Float32Array(3) as unknown as Uint16Array));
    };
    let caught: unknown;
    try {
      await caller();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(InternVLError);
    const err = caught as InternVLError;
    expect(err.code).toBe('ERR_INVALID_ARG');
    expect(err.message).toBe('Expected Uint16Array for input but received typed array');
    expect(err.stack).toContain('callerFrameForStackCheck');
  });
});

describe('addon load failures', () => {
  test('a missing build is explained with the paths tried and the one command that fixes it', () => {
    let caught: unknown;
    try {
      loadNativeFrom('/nonexistent/internvl-node');
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(InternVLError);
    const err = caught as InternVLError;
    expect(err.code).toBe('ERR_NATIVE_LOAD');
    expect(err.message).toContain('has not been built');
    expect(err.message).toContain('npx internvl build');
    expect(err.message).toContain('/nonexistent/internvl-node/build/Release/internvl.node'); // bindings' tried paths
  });
});
