// The import graph of src/: data flows one way. Each folder is a stage, and a stage imports only
// from stages below it (never a sibling, never one above), so there is no cycle between folders
// and nothing before the report imports it. The graph is read by dependency-cruiser from the
// real sources, dynamic imports included.
import { cruise, type IModule } from 'dependency-cruiser';
import { beforeAll, describe, expect, it } from 'vitest';

/** The stages, bottom first. A file directly in src/ is its own stage (errors.ts, progress.ts, cli.ts). */
const STAGES: string[][] = [
  ['errors.ts'],
  ['shared'],
  ['libc'],
  ['servers', 'clients', 'tracer'],
  ['runtime'],
  ['labs'],
  ['analysis'],
  ['report', 'grade'],
  ['swarm'],
  ['progress.ts'],
  ['cli.ts'],
];

const folderOf = (path: string) => path.replace(/^src\//, '').split('/')[0];
const stageOf = (path: string) => STAGES.findIndex((stage) => stage.includes(folderOf(path)));

let modules: IModule[];
beforeAll(async () => {
  const result = await cruise(['src'], { tsConfig: { fileName: 'tsconfig.json' }, exclude: { path: 'node_modules' }, doNotFollow: { path: 'node_modules' } });
  if (typeof result.output === 'string') throw new Error('dependency-cruiser returned text, not a graph');
  modules = result.output.modules.filter((m) => m.source.startsWith('src/'));
}, 60_000);

describe('the import graph of src/', () => {
  it('reads every source file, each in a known stage', () => {
    expect(modules.length).toBeGreaterThan(50);
    expect(modules.filter((m) => stageOf(m.source) === -1).map((m) => m.source)).toEqual([]);
  });

  it('has every import between folders going to a lower stage', () => {
    const wrong = modules.flatMap((m) =>
      m.dependencies
        .filter((d) => d.resolved.startsWith('src/') && folderOf(d.resolved) !== folderOf(m.source))
        .filter((d) => stageOf(d.resolved) >= stageOf(m.source))
        .map((d) => `${m.source} -> ${d.resolved}`),
    );
    expect(wrong).toEqual([]);
  });

  it('has no earlier stage importing the report, and the report importing no runtime', () => {
    const into = (folder: string) =>
      modules.flatMap((m) => m.dependencies.filter((d) => folderOf(d.resolved) === folder && folderOf(m.source) !== folder).map(() => folderOf(m.source)));
    expect([...new Set(into('report'))]).toEqual(['cli.ts']);
    const reportImports = modules.filter((m) => folderOf(m.source) === 'report').flatMap((m) => m.dependencies.map((d) => folderOf(d.resolved)));
    expect(reportImports.filter((folder) => ['runtime', 'labs', 'servers', 'tracer', 'analysis'].includes(folder))).toEqual([]);
  });
});
