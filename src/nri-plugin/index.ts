// Public API of the NRI transport: the plugin lifecycle, its handler contract, status errors
// and the generated NRI message types.
export type {
  Container,
  ContainerAdjustment,
  ContainerEviction,
  ContainerUpdate,
  CreateContainerResponse,
  LinuxContainer,
  Mount,
  PodSandbox,
} from "../gen/nri.js";
export { ContainerState } from "../gen/nri.js";
export {
  type ConfigureInfo,
  type CreateContainerAnswer,
  DEFAULT_SOCKET_PATH,
  type NriHandlers,
  type NriLogger,
  type NriPluginOptions,
  type PluginState,
  type RequestContext,
} from "./api.js";
export type { ContainerIdentity, PodIdentity } from "./create-request.js";
export { EVENT_NUMBER, eventMask, type NriEvent, VALID_EVENT_MASK } from "./events.js";
export { Mux, MuxConn, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN } from "./mux.js";
export { NriPlugin } from "./plugin.js";
export { Code, codeName, TtrpcProtocolError, TtrpcStatusError } from "./ttrpc/status.js";
