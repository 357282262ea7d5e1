// Linearizability checking for paxmon's simulator and specs: the Wing & Gong / Lowe search
// (checker.ts), the models it checks against (models.ts) and parsers for Jepsen histories
// (parsers.ts).
export type { CheckOptions, CheckResult, Model, Operation, StepResult, Verdict } from './checker.ts';
export {
  CACHE_BYTES_MAX_DEFAULT,
  canonicalJson,
  checkOperations,
  describeResult,
  OPERATIONS_MAX,
  STEPS_MAX_DEFAULT,
} from './checker.ts';
export type {
  CounterInput,
  CounterModelOptions,
  CounterOutput,
  KvInput,
  KvModelOptions,
  KvOp,
  KvOutput,
  KvState,
  RegisterInput,
  RegisterModelOptions,
  RegisterOutput,
  RegisterValue,
} from './models.ts';
export { counterModel, kvModel, partitionBy, registerModel } from './models.ts';
export type {
  EdnValue,
  EtcdParseOptions,
  JepsenEvent,
  JepsenPair,
  JepsenType,
  Keyword,
  PorcupineHistory,
} from './parsers.ts';
export {
  HistoryParseError,
  isKeyword,
  LINE_CHARS_MAX,
  loadPorcupineHistories,
  pairJepsenEvents,
  parseEdn,
  parseEtcdExpected,
  parseJepsenEtcdLog,
  parseJepsenKvHistory,
  porcupineDir,
} from './parsers.ts';
