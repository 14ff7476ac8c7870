// A small ttrpc implementation (containerd/ttrpc v1.2.7 wire protocol): unary calls only.
export { Channel, type ChannelOwner } from "./channel.js";
export {
  type CallOptions,
  type ClientOptions,
  createClient,
  TtrpcClient,
  type TypedClient,
} from "./client.js";
export {
  encodeFrame,
  Flags,
  FrameDecoder,
  type FrameSink,
  HEADER_LENGTH,
  MAX_PAYLOAD,
  MessageType,
} from "./frame.js";
export {
  type RawHandler,
  type ServerCallContext,
  ServerConnection,
  type ServerOptions,
  type ServiceImplementation,
  TtrpcServer,
} from "./server.js";
export {
  Code,
  type CodeName,
  codeName,
  TtrpcProtocolError,
  TtrpcStatusError,
  toStatusError,
} from "./status.js";
export type { MessageCodec, MethodDefinition, ServiceDefinition } from "./types.js";
