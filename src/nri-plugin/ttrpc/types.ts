// The slice of ts-proto's generic service definitions (outputServices=generic-definitions)
// that the client and server need.

export interface MessageCodec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
}

export interface MethodDefinition<Req, Res> {
  readonly name: string;
  readonly requestType: MessageCodec<Req>;
  readonly responseType: MessageCodec<Res>;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

export interface ServiceDefinition {
  readonly name: string;
  /** Fully-qualified proto service name: the ttrpc `service` field. */
  readonly fullName: string;
  // biome-ignore lint/suspicious/noExplicitAny: method request/response types vary per method
  readonly methods: Readonly<Record<string, MethodDefinition<any, any>>>;
}
