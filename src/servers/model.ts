// What every IO-model server provides. A model gets a listening socket and serves the echo
// protocol on it forever; everything else (the socket, the ready line, the echo itself) is shared.

/** The system calls a model must and must not show in steady state, as `strace -c` names them. */
export interface Fingerprint {
  /** Each entry is satisfied by any one of its names (glibc may use select or pselect6). */
  required: string[][];
  /** Calls whose presence means the server is not this model. */
  forbidden: string[];
}

export interface ServerModel {
  name: string;
  /** One line: how the model waits for data. */
  summary: string;
  fingerprint: Fingerprint;
  /** Serves the echo protocol on `listener` (a bound, listening, blocking socket) forever. */
  serve(listener: number): void;
}
