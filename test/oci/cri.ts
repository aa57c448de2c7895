/**
 * A small client of the CRI API (the gRPC service kubelet calls on containerd or CRI-O),
 * over a unix socket. The service is read from test/oci/cri-api.proto (kubernetes/cri-api
 * v0.34.0) with @grpc/proto-loader and called with @grpc/grpc-js, the standard gRPC client
 * for Node; Debian has no crictl.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';

const PROTO = join(import.meta.dirname, 'cri-api.proto');

type Unary = (
  request: object,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response: Record<string, unknown>) => void,
) => void;

/* eslint-disable @typescript-eslint/no-explicit-any -- responses are the proto's messages, read as JSON */
export class CriClient {
  private readonly runtime: grpc.Client & Record<string, Unary>;
  private readonly images: grpc.Client & Record<string, Unary>;

  constructor(socket: string) {
    const def = protoLoader.loadSync(PROTO, {
      keepCase: true,
      longs: Number,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as any;
    this.runtime = new pkg.runtime.v1.RuntimeService(`unix://${socket}`, grpc.credentials.createInsecure());
    this.images = new pkg.runtime.v1.ImageService(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  /** Calls one RPC of RuntimeService (or ImageService) by name, with a 30 s deadline; rejects with the gRPC status text. */
  call(
    method: string,
    request: object,
    service: 'RuntimeService' | 'ImageService' = 'RuntimeService',
  ): Promise<any> {
    const client = service === 'RuntimeService' ? this.runtime : this.images;
    const fn = client[method];
    if (typeof fn !== 'function') throw new Error(`no RPC ${method} in ${service}`);
    return new Promise((resolve, reject) => {
      fn.call(client, request, { deadline: Date.now() + 30_000 }, (err, response) => {
        if (err) reject(new Error(`CRI ${method} failed: ${err.details || err.message}`));
        else resolve(response);
      });
    });
  }

  close(): void {
    this.runtime.close();
    this.images.close();
  }
}
