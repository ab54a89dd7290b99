// C submissions on the local sandbox: the grader builds server.c with this machine's gcc (or the
// student's Makefile with make), grades the binary like any other server, names a compile error
// the way a student reads it (file:line:col), and reports a server killed by a signal by the
// signal's name. Real gcc, real make, real sockets. In containers: grade-c-docker.test.ts.
import { cp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gradeSubmission } from '../src/grade/grade.js';
import { LocalSandbox } from '../src/grade/local-sandbox.js';
import type { GradeReport } from '../src/grade/report.js';
import { loadExercise } from '../src/grade/rubric.js';
import { copyGraderCase, submissionDir } from './helpers.js';
import { buildMistake, C_COMPILE, prepareSubmission, SubmissionError } from '../src/grade/submission.js';

const CASES = join(import.meta.dirname, 'fixtures', 'grader-cases');

async function grade(dir: string, exerciseId: string, only: NonNullable<Parameters<typeof gradeSubmission>[2]['only']>): Promise<GradeReport> {
  return gradeSubmission(dir, await loadExercise(exerciseId), { sandbox: new LocalSandbox(), only });
}

const verdicts = (report: GradeReport) => report.checks.map((c) => [c.check, c.passed, c.passed ? '' : c.feedback]);

/**
 * Answers its first client with a write after shutting down its own sending side: EPIPE, and
 * SIGPIPE, whose default action ends the process (the same server is in grade-c-docker.test.ts).
 */
const WRITES_AFTER_SHUTDOWN = `#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int ls = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(getenv("PORT"))), .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 16) < 0) { perror("bind/listen"); return 1; }
    printf("listening as pid %d\\n", (int)getpid());
    fflush(stdout);
    int c = accept(ls, NULL, NULL);
    char buf[256];
    read(c, buf, sizeof buf);
    shutdown(c, SHUT_WR);
    ssize_t w = write(c, "late\\n", 5);
    printf("survived the write: %zd, errno %d\\n", w, errno);
    fflush(stdout);
    pause();
    return 0;
}
`;

/** Line 4 holds the mistake: `int x = (;` */
const SYNTAX_ERROR = '#include <stdio.h>\n\nint main(void) {\n    int x = (;\n    return x;\n}\n';
/** What gcc (Debian 12's gcc 12, in the C locale) says first about it. */
const GCC_SAYS = "server.c:4:14: error: expected expression before ';' token\n    4 |     int x = (;\n      |              ^";

describe('a C submission is found', () => {
  it('after iolab.yaml, a Dockerfile, server.py, server.ts and server.js; a Makefile before server.c', async () => {
    const kind = async (files: Record<string, string>) => {
      const prepared = await prepareSubmission(await submissionDir(files));
      await prepared.dispose();
      return [prepared.kind, prepared.description, prepared.command, prepared.build];
    };
    expect(await kind({ 'server.c': '' })).toEqual(['c', 'server.c (C)', ['./server'], C_COMPILE]);
    expect(await kind({ 'server.c': '', Makefile: 'server:\n' })).toEqual(['c', 'Makefile (C)', ['./server'], ['make']]);
    expect(await kind({ 'main.c': '', makefile: 'server:\n' })).toEqual(['c', 'makefile (C)', ['./server'], ['make']]);
    expect((await kind({ 'server.c': '', 'server.py': '' }))[0]).toBe('python');
    expect((await kind({ 'server.c': '', 'server.js': '' }))[0]).toBe('javascript');
    expect((await kind({ 'server.c': '', Dockerfile: 'FROM x' }))[0]).toBe('dockerfile');
    const empty = await prepareSubmission(await submissionDir({ 'notes.txt': 'hi' })).catch((e: unknown) => e);
    expect((empty as Error).message).toMatch(/has no server\.py, server\.ts, server\.js, server\.c, Makefile, Dockerfile or iolab\.yaml \(it holds notes\.txt\)$/);
  });
});

describe('a C submission on the local sandbox', () => {
  it('server.c is built with gcc -D_FORTIFY_SOURCE=2 and the blocking server passes echo, large-message and binary', async () => {
    const dir = await copyGraderCase('c-blocking-read-write');
    const report = await grade(dir, 'blocking-echo', ['echo', 'large-message', 'binary']);
    expect(report.status, report.notGradableReason ?? '').toBe('graded');
    expect(report.submission.description).toBe('server.c (C)');
    expect(verdicts(report)).toEqual([
      ['echo', true, ''],
      ['large-message', true, ''],
      ['binary', true, ''],
    ]);
    // what ran is the C binary: its printf
    expect(report.server.output.some((line) => /^listening on 0\.0\.0\.0:\d+$/.test(line)), report.server.output.join('\n')).toBe(true);
    expect(C_COMPILE).toEqual(['gcc', '-O2', '-D_FORTIFY_SOURCE=2', '-Wall', '-pthread', '-o', 'server', 'server.c']);
  }, 90_000);

  it('an epoll server in C passes the concurrent check', async () => {
    const report = await grade(await copyGraderCase('c-epoll-read-write'), 'epoll-echo', ['echo', 'concurrent']);
    expect(report.status, report.notGradableReason ?? '').toBe('graded');
    expect(verdicts(report)).toEqual([
      ['echo', true, ''],
      ['concurrent', true, ''],
    ]);
  }, 90_000);

  it('a syntax error fails every check with "server.c:LINE:COL: error: ..." and the source line under it', async () => {
    const dir = await submissionDir({ 'server.c': SYNTAX_ERROR });
    // the sandbox's build: the student's mistake, not the grader's failure
    const submission = await prepareSubmission(dir);
    const error = await new LocalSandbox().prepare(submission).then(() => null, (e: unknown) => e);
    await submission.dispose();
    expect(error).toBeInstanceOf(SubmissionError);
    expect((error as SubmissionError).mistake).toBe('does-not-build');
    // the first error and the source lines gcc prints under it; not the errors that follow from it
    expect((error as SubmissionError).message).toBe(GCC_SAYS);

    // and the grade: every check fails with it
    const report = await grade(dir, 'blocking-echo', ['echo', 'large-message']);
    expect(report.status, report.notGradableReason ?? '').toBe('graded');
    expect(report.score).toBe(0);
    expect(report.checks).toHaveLength(2);
    for (const check of report.checks) {
      expect(check.passed).toBe(false);
      expect(check.feedback).toBe(GCC_SAYS);
    }
  }, 60_000);

  it('a Makefile builds the server with make: its ./server runs, not a binary handed in', async () => {
    const dir = await submissionDir({
      Makefile: 'CFLAGS = -O2 -Wall\n\nserver: echo.o\n\t$(CC) $(CFLAGS) -o server echo.o\n\nclean:\n\trm -f server echo.o\n',
      // a stale binary from the student's machine: never run, the grader builds from source
      server: '#!/bin/sh\necho stale binary >&2\nexit 3\n',
    });
    await cp(join(CASES, 'c-blocking-read-write', 'server.c'), join(dir, 'echo.c'));
    const prepared = await prepareSubmission(dir);
    expect([prepared.kind, prepared.command, prepared.build, prepared.description]).toEqual(['c', ['./server'], ['make'], 'Makefile (C)']);
    expect(prepared.files.sort()).toEqual(['Makefile', 'echo.c']);
    await prepared.dispose();

    const report = await grade(dir, 'blocking-echo', ['echo']);
    expect(report.status, report.notGradableReason ?? '').toBe('graded');
    expect(report.submission.description).toBe('Makefile (C)');
    expect(verdicts(report)).toEqual([['echo', true, '']]);
    // the student's own copy is untouched: the build ran in the grader's copy
    expect(await readFile(join(dir, 'server'), 'utf8')).toContain('stale binary');
  }, 60_000);

  it("a Makefile whose first target is not ./server, or that does not build, is the student's mistake", async () => {
    const other = await prepareSubmission(await submissionDir({ Makefile: 'all:\n\techo nothing to build\n', 'server.c': 'int main(void) { return 0; }\n' }));
    const notBuilt = await new LocalSandbox().prepare(other).then(() => null, (e: unknown) => e);
    await other.dispose();
    expect(notBuilt).toBeInstanceOf(SubmissionError);
    expect((notBuilt as Error).message).toBe('make finished without building ./server: the first target of the Makefile must build the server as ./server');

    const broken = await prepareSubmission(await submissionDir({ Makefile: 'server: server.c\n    cc -o server server.c\n', 'server.c': 'int main(void) { return 0; }\n' }));
    const error = await new LocalSandbox().prepare(broken).then(() => null, (e: unknown) => e);
    await broken.dispose();
    expect(error).toBeInstanceOf(SubmissionError);
    expect((error as Error).message).toMatch(/^Makefile:2: \*\*\* missing separator/);
  }, 30_000);

  it("a server killed by a signal ends with the signal's name: SIGPIPE for a write the peer can no longer take", async () => {
    const sandbox = new LocalSandbox();
    const submission = await prepareSubmission(await submissionDir({ 'server.c': WRITES_AFTER_SHUTDOWN }));
    try {
      await sandbox.prepare(submission);
      const server = await sandbox.start();
      const listening = await server.waitListening(20_000);
      expect(listening.listening).toMatchObject({ port: sandbox.port });
      const outcome = await server.probe({ probe: 'echo' }).result;
      expect(outcome.ok).toBe(false);
      let state = await server.state();
      for (let waited = 0; state.running && waited < 50; waited++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        state = await server.state();
      }
      expect([state.running, state.exit]).toEqual([false, 'SIGPIPE']);
      expect(state.output).toEqual([`listening as pid ${listening.listening!.pid}`]);
    } finally {
      await sandbox.close();
      await submission.dispose();
    }
  }, 60_000);
});

describe('a failed C build, read for the student', () => {
  it('names the first compiler error, then the linker, then make; null when the output shows no mistake of the student', () => {
    expect(
      buildMistake(
        [
          "/tmp/iolab-submission-x/server.c: In function 'main':",
          "/tmp/iolab-submission-x/server.c:7:5: warning: unused variable 'y' [-Wunused-variable]",
          "/tmp/iolab-submission-x/server.c:9:12: error: 'sockfd' undeclared (first use in this function)",
          '    9 |     listen(sockfd, 5);',
          '      |            ^~~~~~',
          "/tmp/iolab-submission-x/server.c:12:1: error: expected ';' before '}' token",
          'make: *** [Makefile:2: server] Error 1',
        ],
        '/tmp/iolab-submission-x',
      ),
    ).toBe("server.c:9:12: error: 'sockfd' undeclared (first use in this function)\n    9 |     listen(sockfd, 5);\n      |            ^~~~~~");
    expect(buildMistake(['server.c:1:10: fatal error: nosuch.h: No such file or directory', '    1 | #include <nosuch.h>', '      |          ^~~~~~~~~~', 'compilation terminated.'], '/submission')).toBe(
      'server.c:1:10: fatal error: nosuch.h: No such file or directory\n    1 | #include <nosuch.h>\n      |          ^~~~~~~~~~',
    );
    expect(
      buildMistake(["/usr/bin/ld: /tmp/ccQ1.o: in function `main':", "server.c:(.text.startup+0x2c): undefined reference to `epoll_wiat'", 'collect2: error: ld returned 1 exit status'], '/submission'),
    ).toBe("linking failed: /usr/bin/ld: /tmp/ccQ1.o: in function `main':\nserver.c:(.text.startup+0x2c): undefined reference to `epoll_wiat'");
    expect(buildMistake(['clang -o server server.c', 'make: clang: No such file or directory', 'make: *** [Makefile:2: server] Error 127'], '/submission')).toBe(
      'make: clang: No such file or directory\nmake: *** [Makefile:2: server] Error 127',
    );
    expect(buildMistake(['gcc: fatal error: Killed signal terminated program cc1', 'compilation terminated.'], '/submission')).toBeNull();
    expect(buildMistake([], '/submission')).toBeNull();
  });
});
