// The README's counter (examples/counter.ts, which examples/counter-service.ts runs and
// examples/counter.test.ts tests) as the specs use it: a custom PaxosService whose every version
// holds the whole value (`counter/<N>`). One definition, so the specs test the README's own.
export { counter } from '../../examples/counter.ts';
