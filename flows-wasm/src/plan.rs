// The plans the filter runs, read from the plugin configuration, and the pure parts of running one
// (templates, query parsing, reshaping a step's body, error bodies), kept apart from the host calls.
//
// { "routes": { "<product>/<route>": {
//   "calls": [
//     { "name": "user", "service": "users", "cluster": "users", "path": "/users/{request.query.user}",
//       "timeoutMs": 1000, "pick": ["id", "name"] },
//     { "name": "orders", "service": "orders", "cluster": "orders", "path": "/orders",
//       "query": [["user", "{request.query.user}"], ["limit", "3"]], "timeoutMs": 1000, "fallback": [] }
//   ],
//   "reply": [{ "key": "user", "step": "user" }, { "key": "recent_orders", "step": "orders" }] } } }
// Templates take Portico's {request.query.NAME} (the request's query parameter, decoded) and
// {request.headers.NAME}, and {request.identity.claims.NAME} / {request.identity.partner|plan}: the
// value from the first of the headers the plan's "identity" lists for it ([["claims.sub",
// ["x-user-id"]], ["partner", ["x-portico-partner"]]]), which Envoy's authentication set from
// the verified token before this filter (and the edge stripped from callers); a value is
// percent-encoded where it lands. "pick", "remove" and "rename"
// ({"old": "new"}) reshape a step's object body (top-level fields); a step with "fallback" that fails
// (transport error, timeout, non-2xx, not JSON) puts the fallback in the reply, one without it fails
// the flow as the runtime does (502, or 504 for a timeout, naming the step).
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoutes {
    routes: std::collections::BTreeMap<String, RawPlan>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    calls: Vec<RawCall>,
    reply: Vec<RawKey>,
    /// Identity values the templates read ("claims.sub", "partner", "plan"), each with the headers that carry it.
    #[serde(default)]
    identity: Vec<(String, Vec<String>)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCall {
    name: String,
    service: String,
    cluster: String,
    path: String,
    #[serde(default)]
    query: Vec<(String, String)>,
    timeout_ms: u64,
    fallback: Option<Value>,
    pick: Option<Vec<String>>,
    remove: Option<Vec<String>>,
    rename: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    key: String,
    step: String,
}

#[derive(Debug, PartialEq)]
pub enum Part {
    Text(String),
    Query(String),
    Header(String),
    /// An identity value ("claims.sub", "partner"), read from the first of the headers Envoy's authentication set it in.
    Identity { name: String, headers: Vec<String> },
}

/// How a step's body is reshaped before it goes into the reply (all empty: passed through as is).
#[derive(Default)]
pub struct Shape {
    pick: Option<Vec<String>>,
    remove: Vec<String>,
    rename: Vec<(String, String)>,
}

pub struct Call {
    pub name: String,
    pub service: String,
    pub cluster: String,
    path: Vec<Part>,
    query: Vec<(String, Vec<Part>)>,
    pub timeout_ms: u64,
    /// The fallback, already serialised.
    pub fallback: Option<Vec<u8>>,
    pub shape: Shape,
}

pub struct ReplyKey {
    /// The key as a JSON string, quotes included.
    pub name_json: Vec<u8>,
    pub call: usize,
}

pub struct Plan {
    pub calls: Vec<Call>,
    pub reply: Vec<ReplyKey>,
    /// Request headers some template reads.
    pub headers: Vec<String>,
}

fn template(s: &str, identity: &[(String, Vec<String>)]) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_string()));
        }
        let close = rest[open..].find('}').ok_or_else(|| format!("unclosed {{ in {s:?}"))? + open;
        let name = &rest[open + 1..close];
        parts.push(if let Some(q) = name.strip_prefix("request.query.") {
            Part::Query(q.to_string())
        } else if let Some(h) = name.strip_prefix("request.headers.") {
            Part::Header(h.to_ascii_lowercase())
        } else if let Some(c) = name.strip_prefix("request.identity.") {
            let headers = identity.iter().find(|(k, _)| k == c).map(|(_, h)| h.iter().map(|h| h.to_ascii_lowercase()).collect()).ok_or_else(|| format!("{c} in {s:?} has no headers in the plan's identity"))?;
            Part::Identity { name: c.to_string(), headers }
        } else {
            return Err(format!("unknown value {{{name}}} in {s:?} (request.query.NAME, request.headers.NAME or request.identity.…)"));
        });
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

/// Every route's plan, by route name.
pub struct RoutePlans;

impl RoutePlans {
    pub fn parse(bytes: &[u8]) -> Result<Vec<(String, Plan)>, String> {
        let raw: RawRoutes = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        raw.routes.into_iter().map(|(route, p)| Plan::from_raw(p).map(|plan| (route.clone(), plan)).map_err(|e| format!("route {route}: {e}"))).collect()
    }
}

impl Plan {
    #[cfg(test)]
    pub fn parse(bytes: &[u8]) -> Result<Plan, String> {
        Plan::from_raw(serde_json::from_slice(bytes).map_err(|e| e.to_string())?)
    }

    fn from_raw(raw: RawPlan) -> Result<Plan, String> {
        let mut headers = Vec::new();
        let mut calls = Vec::with_capacity(raw.calls.len());
        for c in raw.calls {
            if calls.iter().any(|k: &Call| k.name == c.name) {
                return Err(format!("two calls named {:?}", c.name));
            }
            let path = template(&c.path, &raw.identity)?;
            let query = c.query.iter().map(|(k, v)| Ok((k.clone(), template(v, &raw.identity)?))).collect::<Result<Vec<_>, String>>()?;
            for p in path.iter().chain(query.iter().flat_map(|(_, v)| v.iter())) {
                let read = match p {
                    Part::Header(h) => std::slice::from_ref(h),
                    Part::Identity { headers, .. } => headers.as_slice(),
                    _ => &[],
                };
                for h in read {
                    if !headers.contains(h) {
                        headers.push(h.clone());
                    }
                }
            }
            let rename = c
                .rename
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| v.as_str().map(|n| (k.clone(), n.to_string())).ok_or_else(|| format!("call {}: rename.{k} must be a string", c.name)))
                .collect::<Result<Vec<_>, String>>()?;
            calls.push(Call {
                fallback: c.fallback.map(|f| serde_json::to_vec(&f).expect("a Value serialises")),
                shape: Shape { pick: c.pick, remove: c.remove.unwrap_or_default(), rename },
                name: c.name,
                service: c.service,
                cluster: c.cluster,
                path,
                query,
                timeout_ms: c.timeout_ms,
            });
        }
        let mut reply = Vec::with_capacity(raw.reply.len());
        for k in raw.reply {
            let call = calls.iter().position(|c| c.name == k.step).ok_or_else(|| format!("reply key {:?}: no call named {:?}", k.key, k.step))?;
            reply.push(ReplyKey { name_json: serde_json::to_vec(&k.key).expect("a string serialises"), call });
        }
        if calls.is_empty() {
            return Err("a plan needs calls".into());
        }
        Ok(Plan { calls, reply, headers })
    }
}

/// What templates read from the downstream request.
pub struct RequestValues {
    query: Vec<(String, String)>,
    headers: Vec<(String, Option<String>)>,
}

fn unhex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// application/x-www-form-urlencoded decoding of one query component ('+' is a space).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match (unhex(b[i + 1]), unhex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes all but RFC 3986's unreserved characters: safe in a path segment and a query value.
fn encode(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c as char);
        } else {
            out.push('%');
            out.push(HEX[(c >> 4) as usize] as char);
            out.push(HEX[(c & 15) as usize] as char);
        }
    }
}

impl RequestValues {
    pub fn new(path: &str, headers: Vec<(String, Option<String>)>) -> RequestValues {
        let query = match path.split_once('?') {
            Some((_, q)) => q
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(p), String::new()),
                })
                .collect(),
            None => Vec::new(),
        };
        RequestValues { query, headers }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.as_deref())
    }

    fn value<'a>(&'a self, p: &'a Part) -> Result<&'a str, String> {
        match p {
            Part::Text(t) => Ok(t),
            Part::Query(q) => self.query.iter().find(|(k, _)| k == q).map(|(_, v)| v.as_str()).ok_or_else(|| format!("query parameter {q} is required")),
            Part::Header(h) => self.header(h).ok_or_else(|| format!("header {h} is required")),
            // Set by jwt_authn (or ext_authz) after verifying the token; callers' copies were stripped first in the chain.
            Part::Identity { name, headers } => headers.iter().find_map(|h| self.header(h)).ok_or_else(|| match name.strip_prefix("claims.") {
                Some(c) => format!("the caller's token has no claim {c}"),
                None => format!("the caller has no {name}"),
            }),
        }
    }
}

impl Call {
    /// The call's :path for this request, values percent-encoded.
    pub fn target(&self, values: &RequestValues) -> Result<String, String> {
        let mut out = String::with_capacity(64);
        for p in &self.path {
            match p {
                Part::Text(t) => out.push_str(t),
                _ => encode(values.value(p)?, &mut out),
            }
        }
        for (i, (k, v)) in self.query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            encode(k, &mut out);
            out.push('=');
            for p in v {
                encode(values.value(p)?, &mut out);
            }
        }
        Ok(out)
    }
}

/// A step's body as the reply takes it: checked to be JSON, and reshaped if the plan says so.
pub fn reshape(shape: &Shape, body: &[u8]) -> Result<Vec<u8>, String> {
    if shape.pick.is_none() && shape.remove.is_empty() && shape.rename.is_empty() {
        serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| format!("is not valid JSON: {e}"))?;
        return Ok(body.to_vec());
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("is not valid JSON: {e}"))?;
    Ok(serde_json::to_vec(&reshape_value(shape, v)).expect("a Value serialises"))
}

/// The runtime's reshaping (src/flows/transforms.ts) for top-level fields: into every element of an
/// array, other values as they are; pick in the pick list's order, remove and rename keeping the
/// body's order (serde_json's preserve_order), a renamed field replacing one of the same name.
fn reshape_value(shape: &Shape, v: Value) -> Value {
    let mut obj = match v {
        Value::Array(a) => return Value::Array(a.into_iter().map(|e| reshape_value(shape, e)).collect()),
        Value::Object(o) => o,
        other => return other,
    };
    if let Some(pick) = &shape.pick {
        let mut kept = Map::new();
        for k in pick {
            if let Some(v) = obj.remove(k) {
                kept.insert(k.clone(), v);
            }
        }
        obj = kept;
    }
    if !shape.remove.is_empty() {
        obj = obj.into_iter().filter(|(k, _)| !shape.remove.contains(k)).collect();
    }
    if !shape.rename.is_empty() {
        let mut out = Map::new();
        for (k, v) in obj {
            match shape.rename.iter().find(|(from, _)| *from == k) {
                Some((_, to)) => {
                    out.insert(to.clone(), v);
                }
                None => {
                    if !out.contains_key(&k) {
                        out.insert(k, v);
                    }
                }
            }
        }
        obj = out;
    }
    Value::Object(obj)
}

/// The gateway's error body (src/contract's gatewayErrorBody).
pub fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({ "error": code, "message": message }).to_string()
}

/// A failed step's error body, as the flow runtime writes it (src/flows/run-state.ts).
pub fn step_error_body(code: &str, step: &str, message: &str) -> String {
    let mut m = Map::new();
    m.insert("error".into(), Value::from(code));
    m.insert("message".into(), Value::from(format!("Step {step} failed: {message}.")));
    m.insert("step".into(), Value::from(step));
    Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"{"calls":[
      {"name":"user","service":"users","cluster":"users","path":"/users/{request.query.user}","timeoutMs":1000,"pick":["id","name"]},
      {"name":"orders","service":"orders","cluster":"orders","path":"/orders","query":[["user","{request.query.user}"],["t","{request.headers.X-Team}"]],"timeoutMs":500,"fallback":[]}],
      "reply":[{"key":"user","step":"user"},{"key":"recent_orders","step":"orders"}]}"#;

    #[test]
    fn templates_take_decoded_query_values_and_encode_them_again() {
        let plan = Plan::parse(PLAN.as_bytes()).unwrap();
        assert_eq!(plan.headers, vec!["x-team".to_string()]);
        let v = RequestValues::new("/api/home?x=1&user=a%2Fb+c&", vec![("x-team".into(), Some("mobile app".into()))]);
        assert_eq!(plan.calls[0].target(&v).unwrap(), "/users/a%2Fb%20c");
        assert_eq!(plan.calls[1].target(&v).unwrap(), "/orders?user=a%2Fb%20c&t=mobile%20app");
        assert_eq!(plan.calls[1].fallback.as_deref(), Some(&b"[]"[..]));
        let missing = RequestValues::new("/api/home", vec![]);
        assert_eq!(plan.calls[0].target(&missing).unwrap_err(), "query parameter user is required");
    }

    #[test]
    fn identity_values_are_read_from_the_headers_authentication_set() {
        let plan = Plan::parse(
            br#"{"calls":[{"name":"user","service":"users","cluster":"users","path":"/users/{request.identity.claims.sub}","query":[["t","{request.headers.x-team}"]],"timeoutMs":1000}],
              "reply":[{"key":"user","step":"user"}],"identity":[["claims.sub",["X-User-Id","x-sub"]]]}"#,
        )
        .unwrap();
        assert_eq!(plan.headers, vec!["x-user-id".to_string(), "x-sub".to_string(), "x-team".to_string()]);
        let hdrs = |id: Option<&str>, sub: Option<&str>| vec![("x-user-id".to_string(), id.map(String::from)), ("x-sub".to_string(), sub.map(String::from)), ("x-team".to_string(), Some("t".into()))];
        // The first header the claim's issuers forward it in; a value is encoded where it lands.
        assert_eq!(plan.calls[0].target(&RequestValues::new("/h", hdrs(Some("usr 1"), Some("other")))).unwrap(), "/users/usr%201?t=t");
        assert_eq!(plan.calls[0].target(&RequestValues::new("/h", hdrs(None, Some("usr_2")))).unwrap(), "/users/usr_2?t=t");
        assert_eq!(plan.calls[0].target(&RequestValues::new("/h", hdrs(None, None))).unwrap_err(), "the caller's token has no claim sub");
        // A claim the plan does not map to headers is refused when the plan is read.
        let e = Plan::parse(br#"{"calls":[{"name":"a","service":"c","cluster":"c","path":"/{request.identity.claims.role}","timeoutMs":1}],"reply":[]}"#).err().unwrap();
        assert!(e.contains("claims.role"), "{e}");
        // The partner, from the callout's header.
        let p = Plan::parse(br#"{"calls":[{"name":"a","service":"c","cluster":"c","path":"/p/{request.identity.partner}","timeoutMs":1}],"reply":[],"identity":[["partner",["x-portico-partner"]]]}"#).unwrap();
        assert_eq!(p.calls[0].target(&RequestValues::new("/", vec![("x-portico-partner".into(), Some("web-app".into()))])).unwrap(), "/p/web-app");
        assert_eq!(p.calls[0].target(&RequestValues::new("/", vec![("x-portico-partner".into(), None)])).unwrap_err(), "the caller has no partner");
    }

    #[test]
    fn routes_are_keyed_by_name_and_a_bad_plan_names_its_route() {
        let ok = format!(r#"{{"routes":{{"app/home":{PLAN}}}}}"#);
        let routes = RoutePlans::parse(ok.as_bytes()).unwrap();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].0, "app/home");
        assert_eq!(routes[0].1.calls[1].service, "orders");
        let e = RoutePlans::parse(br#"{"routes":{"app/x":{"calls":[],"reply":[]}}}"#).err().unwrap();
        assert!(e.starts_with("route app/x: "), "{e}");
    }

    #[test]
    fn error_bodies_are_the_runtimes() {
        assert_eq!(step_error_body("flow_step_failed", "user", "users answered 500"), r#"{"error":"flow_step_failed","message":"Step user failed: users answered 500.","step":"user"}"#);
        assert_eq!(error_body("bad_request", "x"), r#"{"error":"bad_request","message":"x"}"#);
    }

    #[test]
    fn a_broken_percent_escape_is_kept_as_text() {
        assert_eq!(decode("a%2"), "a%2");
        assert_eq!(decode("a%zz%41"), "a%zzA");
    }

    #[test]
    fn bad_plans_are_refused_with_the_reason() {
        assert!(Plan::parse(br#"{"calls":[],"reply":[]}"#).err().unwrap().contains("needs calls"));
        let e = Plan::parse(br#"{"calls":[{"name":"a","service":"c","cluster":"c","path":"/{request.params.x}","timeoutMs":1}],"reply":[]}"#).err().unwrap();
        assert!(e.contains("unknown value {request.params.x}"), "{e}");
        let e = Plan::parse(br#"{"calls":[{"name":"a","service":"c","cluster":"c","path":"/","timeoutMs":1}],"reply":[{"key":"k","step":"b"}]}"#).err().unwrap();
        assert!(e.contains("no call named \"b\""), "{e}");
    }

    #[test]
    fn reshaping_picks_removes_renames_and_checks_json() {
        let shape = Shape { pick: Some(vec!["b".into(), "a".into(), "z".into()]), remove: vec!["a".into()], rename: vec![("b".into(), "bee".into())] };
        let out = reshape(&shape, br#"{"a":1,"b":{"c":[2]},"secret":3}"#).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), serde_json::json!({"bee":{"c":[2]}}));
        // Into arrays, element by element; other values as they are (as the runtime does).
        assert_eq!(reshape(&shape, br#"[{"b":1,"x":2},3]"#).unwrap(), br#"[{"bee":1},3]"#);
        assert_eq!(reshape(&Shape::default(), b" [1, 2] ").unwrap(), b" [1, 2] ");
        assert!(reshape(&Shape::default(), b"{").unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn reshaping_keeps_the_runtimes_order() {
        let pick = Shape { pick: Some(vec!["z".into(), "a".into()]), ..Shape::default() };
        assert_eq!(reshape(&pick, br#"{"a":1,"m":2,"z":3}"#).unwrap(), br#"{"z":3,"a":1}"#);
        let remove = Shape { remove: vec!["m".into()], rename: vec![("z".into(), "b".into())], ..Shape::default() };
        assert_eq!(reshape(&remove, br#"{"z":3,"m":2,"a":1}"#).unwrap(), br#"{"b":3,"a":1}"#);
    }
}
