// GPU-only checks: run on the GPU machine (see ../shared/GPU.md). Elsewhere they are
// skipped, and the suite's title says why.
import { runtimeInfo } from '../../lib/native.js';
import { cudaSkipReason } from '../helpers/gpu.js';

const info = runtimeInfo();
const reason = cudaSkipReason();
const describeGpu = reason ? describe.skip : describe;

describeGpu(`CUDA backend${reason ? ` (skipped: ${reason})` : ''}`, () => {
  test('reports each device with memory and compute capability', () => {
    expect(info.backends).toContain('cuda');
    expect(info.cuda.cublasVersion).toBeGreaterThan(0);
    expect(info.cuda.cublasLtVersion).toBeGreaterThan(0);
    for (const d of info.cuda.devices) {
      expect(d.name.length).toBeGreaterThan(0);
      expect(d.totalMemory).toBeGreaterThan(1 << 30);
      expect(d.freeMemory).toBeGreaterThan(0);
      expect(d.freeMemory).toBeLessThanOrEqual(d.totalMemory);
      expect(d.computeCapability).toMatch(/^\d+\.\d+$/);
    }
    // eslint-disable-next-line no-console
    console.log(`CUDA devices: ${JSON.stringify(info.cuda.devices)}`);
  });
});

if (reason) {
  test(`GPU suite skipped: ${reason}`, () => {
    expect(reason.length).toBeGreaterThan(0);
  });
}
