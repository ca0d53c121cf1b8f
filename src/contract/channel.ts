// The Envoy side of the mTLS channels to the control plane (xDS, callouts, access logs), as the
// bootstrap and the translator both write it. The node's key never leaves its host: Envoy reads its
// certificate, key and the CA from files, through file-based SDS (Envoy re-reads SDS-referenced
// files when they change on disk; certificates written straight into a TLS context are never reloaded).
// The bootstrap's xDS cluster and the pushed callout and access-log clusters name the same two secrets.

/** The node's client certificate and key. */
export const NODE_CERTIFICATE_SECRET = 'portico.node';
/** The CA and the control plane's identity, which Envoy checks on every channel. */
export const CONTROL_PLANE_VALIDATION_SECRET = 'portico.control-plane';

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

const SECRET_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';

/** The two file-based SDS files (Envoy takes one secret per file), in the channel SDS directory on the Envoy host. */
export const CHANNEL_SDS_FILES = { node: 'portico-node-sds.yaml', controlPlane: 'portico-control-plane-sds.yaml' } as const;

function fileSource(sdsDir: string, file: string): { [k: string]: Json } {
  return { path_config_source: { path: `${sdsDir.replace(/\/+$/, '')}/${file}` }, resource_api_version: 'V3' };
}

/** An UpstreamTlsContext transport socket presenting the node certificate and checking the control plane's identity. */
export function channelTransportSocket(sdsDir: string): { [k: string]: Json } {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      common_tls_context: {
        alpn_protocols: ['h2'],
        tls_certificate_sds_secret_configs: [{ name: NODE_CERTIFICATE_SECRET, sds_config: fileSource(sdsDir, CHANNEL_SDS_FILES.node) }],
        validation_context_sds_secret_config: { name: CONTROL_PLANE_VALIDATION_SECRET, sds_config: fileSource(sdsDir, CHANNEL_SDS_FILES.controlPlane) },
      },
    },
  };
}

export interface ChannelFiles {
  /** The node certificate (chain), its key, and the CA bundle the control plane's certificate chains to. */
  certFile: string;
  keyFile: string;
  caFile: string;
  /** The URI SAN the control plane's certificate must carry (src/grpc's controlPlaneIdentityUri). */
  controlPlaneIdentity: string;
}

/**
 * The file-based SDS files themselves (DiscoveryResponses Envoy reads from disk), by file name: one
 * secret each, naming files. Envoy watches the directories of those files and re-reads them on a
 * change (an atomic rename, as Kubernetes does for Secret volumes, or `mv` of a new file into place).
 */
export function channelSdsDocuments(f: ChannelFiles): Record<string, { [k: string]: Json }> {
  return {
    [CHANNEL_SDS_FILES.node]: {
      resources: [
        {
          '@type': SECRET_TYPE,
          name: NODE_CERTIFICATE_SECRET,
          tls_certificate: { certificate_chain: { filename: f.certFile }, private_key: { filename: f.keyFile } },
        },
      ],
    },
    [CHANNEL_SDS_FILES.controlPlane]: {
      resources: [
        {
          '@type': SECRET_TYPE,
          name: CONTROL_PLANE_VALIDATION_SECRET,
          validation_context: {
            trusted_ca: { filename: f.caFile },
            // Any certificate from the CA is not enough: a node certificate must not pass for the control plane.
            match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: f.controlPlaneIdentity } }],
          },
        },
      ],
    },
  };
}
