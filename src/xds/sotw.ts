// State-of-the-world xDS on one stream: every response carries the whole subscribed set (listeners,
// clusters) or what changed (other types), ACK/NACK by nonce, a NACKed version never re-sent.
import { TYPE_URLS } from '../proto/index.ts';
import { sotwUpdate, subscriptionOf, viewOf, type Subscription, type View } from './views.ts';
import { WILDCARD_TYPES, XdsStreamBase, type InFlight, type SotwRequest, type SotwResponse, type StreamOptions } from './stream.ts';

function sameSubscription(sub: Subscription, t: string, names: readonly string[]): boolean {
  const wildcard = names.includes('*') || (names.length === 0 && WILDCARD_TYPES.has(t));
  if (wildcard !== sub.wildcard) return false;
  let explicit = 0;
  for (const n of names) {
    if (n === '*') continue;
    if (!sub.names.has(n)) return false;
    explicit++;
  }
  return explicit === sub.names.size || new Set(names).size - (names.includes('*') ? 1 : 0) === sub.names.size;
}

interface SotwState {
  sub: Subscription;
  inFlight: InFlight | undefined;
  /** Last response sent (ACKed, NACKed or in flight); nonce '' when the client reconnected in sync. */
  sent: { nonce: string; view: View } | undefined;
  /** version_info of the first request: what a reconnecting client holds. */
  initialVersion: string;
  /** The content version the client rejected: never re-sent, only something newer is. */
  nackedVersion: string | undefined;
  /** The last response was NACKed (what the client holds is then uncertain). */
  lastNack: boolean;
}

export class SotwStream extends XdsStreamBase<SotwState> {
  constructor(
    opts: StreamOptions,
    private readonly send: (r: SotwResponse) => void,
  ) {
    super(opts, 'sotw');
  }

  handle(req: SotwRequest): void {
    const t = this.begin(req.node, req.type_url);
    if (!t) return;
    let st = this.types.get(t);
    if (!st) {
      st = { sub: subscription(t, []), inFlight: undefined, sent: undefined, initialVersion: req.version_info, nackedVersion: undefined, lastNack: false };
      this.types.set(t, st);
    }
    if (req.response_nonce && st.sent?.nonce && req.response_nonce !== st.sent.nonce) {
      // A reply to an older response: a newer one is on its way and the client will answer that.
      this.log.debug({ node: this.info.nodeId, type: t, nonce: req.response_nonce }, 'xds: stale nonce ignored');
      return;
    }
    if (st.inFlight && req.response_nonce === st.inFlight.nonce) {
      const f = st.inFlight;
      st.inFlight = undefined;
      if (req.error_detail) {
        st.nackedVersion = f.version;
        st.lastNack = true;
        this.nacked(t, f.version, req.error_detail.message);
      } else {
        if (st.nackedVersion !== f.version) st.nackedVersion = undefined;
        st.lastNack = false;
        this.observer.onAck(this.info, t, f.version, Date.now() - f.at);
      }
    }
    // Envoy repeats the whole list on every request: re-intern only when it changed (without keeping it).
    if (!sameSubscription(st.sub, t, req.resource_names)) st.sub = subscription(t, req.resource_names);
    this.schedule();
  }

  private desired(t: string, st: SotwState): View {
    return viewOf(this.typeSnap(t), st.sub);
  }

  protected settleInitial(t: string, st: SotwState): void {
    if (st.sent || !st.initialVersion) return;
    const d = this.desired(t, st);
    if (d.version !== st.initialVersion) return;
    st.sent = { nonce: '', view: d };
    this.observer.onAck(this.info, t, d.version, undefined);
  }

  protected wouldPush(t: string, st: SotwState): boolean {
    if (st.inFlight) return false;
    const d = this.desired(t, st);
    if (!st.sent && d.version === st.initialVersion) return false;
    return d.version !== st.sent?.view.version && d.version !== st.nackedVersion;
  }

  protected push(t: string, st: SotwState): boolean {
    this.settleInitial(t, st);
    if (!this.wouldPush(t, st)) return false;
    const d = this.desired(t, st);
    // Listeners and clusters: always the full set (absence means deletion). Other types: only what
    // changed since the last response, which is all a client needs (absence means nothing there).
    const out = st.sent && !WILDCARD_TYPES.has(t) && !d.sub.wildcard ? sotwUpdate(st.sent.view, d) : d;
    const nonce = out.nonce;
    st.sent = { nonce, view: d };
    st.inFlight = { nonce, version: d.version, at: Date.now() };
    this.observer.onPush(this.info, t, d.version, out.resources.length);
    this.send({ version_info: d.version, resources: out.resources.map((r) => r.any), type_url: t, nonce, body: out.sotwMessage });
    return true;
  }

  protected heldClusters(): View | null | undefined {
    const st = this.types.get(TYPE_URLS.cluster);
    if (!st?.sent) return null;
    return st.lastNack ? undefined : st.sent.view;
  }

  /** Test and debug view of one type's bookkeeping. */
  typeState(t: string): { sentVersion?: string; inFlight: boolean; nackedVersion?: string; wildcard: boolean; names: string[] } | undefined {
    const st = this.types.get(t);
    if (!st) return undefined;
    return { sentVersion: st.sent?.view.version, inFlight: !!st.inFlight, nackedVersion: st.nackedVersion, wildcard: st.sub.wildcard, names: [...st.sub.names] };
  }
}

function subscription(t: string, names: readonly string[]): Subscription {
  const wildcard = names.includes('*') || (names.length === 0 && WILDCARD_TYPES.has(t));
  return subscriptionOf(wildcard, names);
}
