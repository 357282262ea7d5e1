// MonitorDBStore::Transaction: the encoding is pure and lives in machines/ (Paxos encodes its
// proposals with it); the stores apply it.
export * from '../machines/transaction.ts';
