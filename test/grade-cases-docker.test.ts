// The grader cases that depend on the container (test/fixtures/grader-cases/, README.md there):
// the server is not the container's PID 1, so SIGPIPE's default action kills it as anywhere; an
// exit code of 128+N is said as signal N; a send buffer fills when the client does not read.
// Against a real engine: no engine is a failure here, not a skip (.ci/run starts one).
import { join } from 'node:path';
import Docker from 'dockerode';
import { beforeAll, describe, expect, it } from 'vitest';
import { DockerSandbox } from '../src/grade/docker-sandbox.js';
import { gradeSubmission } from '../src/grade/grade.js';
import type { CheckResult, GradeReport } from '../src/grade/report.js';
import { loadExercise, type CheckKind } from '../src/grade/rubric.js';
import { engineAvailable, ensureImage } from '../src/runtime/docker-image.js';

const CASES = join(import.meta.dirname, 'fixtures', 'grader-cases');
/** An image build, a server container, probes and sidecars: about 15-40 s a grading. */
const GRADING_MS = 300_000;

beforeAll(async () => {
  const docker = new Docker();
  const engine = await engineAvailable(docker);
  if (!engine.ok) throw new Error(`these tests need a Docker engine: ${engine.reason}`);
  await ensureImage(docker);
}, 900_000);

async function grade(name: string, exerciseId: string, only: CheckKind[]): Promise<CheckResult[]> {
  const report: GradeReport = await gradeSubmission(join(CASES, name), await loadExercise(exerciseId), { sandbox: new DockerSandbox(), only });
  expect(report.status, report.notGradableReason ?? '').toBe('graded');
  return report.checks;
}

describe('grader cases in the Docker sandbox', () => {
  it('c-sigpipe: not PID 1, the server is killed by SIGPIPE, said so, with the MSG_NOSIGNAL hint', async () => {
    const [disconnect] = await grade('c-sigpipe', 'epoll-echo', ['disconnect']);
    expect(disconnect.passed).toBe(false);
    expect(disconnect.feedback).toMatch(/status 141: killed by SIGPIPE \(signal 13/);
    expect(disconnect.hints.map((h) => h.id)).toEqual(['sigpipe']);
  }, GRADING_MS);

  it('selectors-unbuffered-send: a BlockingIOError on send gets the full-send-buffer hint, not the reset one', async () => {
    const [disconnect] = await grade('selectors-unbuffered-send', 'selectors-echo', ['disconnect']);
    expect(disconnect.passed).toBe(false);
    expect(disconnect.hints.map((h) => h.id)).toEqual(['full-send-buffer']);
  }, GRADING_MS);

  it('c-select-past-fd-setsize: exit 134 is SIGABRT, glibc\'s "bit out of range", never a segmentation fault', async () => {
    const [ceiling] = await grade('c-select-past-fd-setsize', 'select-echo', ['select-ceiling']);
    expect(ceiling.passed).toBe(false);
    expect(ceiling.feedback).toMatch(/status 134: killed by SIGABRT \(signal 6: abort\(\)/);
    expect(ceiling.feedback).toContain('bit out of range');
    expect(ceiling.feedback).not.toContain('segmentation fault');
    expect(ceiling.hints.map((h) => h.id)).toEqual(['fd-setsize']);
  }, GRADING_MS);
});
