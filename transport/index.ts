// The transport layer's public face: the message catalogue, the Transport port, the wire codec and
// framing, the TCP Messenger and the simulator's in-memory network.
export { type DecodeResult, decodeMessage, decodeValue, encodeMessage, encodeValue } from './codec.ts';
export {
  encodeFrame,
  FrameDecoder,
  type FrameDecoderOptions,
  type FramePushResult,
  frameBytesLimit,
  frameBytesMaxDefault,
  frameHeaderBytes,
  isKeepalive,
  keepaliveFrame,
} from './frame.ts';
export {
  type LinkSettings,
  MemoryNetwork,
  type MemoryNetworkOptions,
  type MemoryNetworkStats,
  type NetworkClock,
  type NetworkEvent,
  type NetworkFaults,
} from './memory-network.ts';
export * from './messages.ts';
export {
  anyFsid,
  authenticate,
  type Hello,
  helloBytesMax,
  type Logger,
  Messenger,
  type MessengerOptions,
  type MessengerStats,
  messengerTimingDefaults,
  parseAddr,
  protocolBanner,
  protocolVersion,
  type Queued,
  type Refusal,
} from './messenger.ts';
export type { Transport, TransportHandlers } from './transport.ts';
