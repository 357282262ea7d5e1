// Bounds on everything that arrives from the network, shared by the message catalogue
// (transport/messages.ts builds its schemas with them and re-exports them) and the protocol
// (machines/ may not import the catalogue's validators, only its types).
/** Bounds on everything that arrives from the network (TigerBeetle: put a limit on everything). */
export const limits = {
  monitorsMax: 64,
  nameBytesMax: 64,
  commandWordsMax: 256,
  // Above mon_config_key_max_entry_size, so an oversized value is refused by the service (EFBIG), not dropped.
  commandWordBytesMax: 4 * 1024 * 1024,
  paxosValuesMax: 10_000,
  /**
   * Decode cost of one frame (transport/codec.ts scanValue): nesting of containers, and values of
   * any kind. The deepest message nests 4; the largest, mon.paxos, holds ~5 × paxosValuesMax.
   */
  decodeDepthMax: 16,
  decodeValuesMax: 200_000,
  /** A LeaderHint's command prefix (a declared prefix is a few words). */
  leaderHintPrefixMax: 256,
} as const;
