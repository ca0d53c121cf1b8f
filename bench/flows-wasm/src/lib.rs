// An Envoy HTTP filter (proxy-wasm ABI) that answers a flow made only of parallel calls and a stitched
// reply, inside Envoy: bench/flows.ts's contender "envoy-wasm", measuring what Envoy-native aggregation
// would cost. The plan (calls, path templates, picks, fallbacks, reply keys) is the plugin configuration,
// the JSON a translator would emit from a flow; see plan.rs for its shape.
mod plan;

use plan::{Call, Plan, RequestValues};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;
use std::time::Duration;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { plan: None }) });
}}

struct Root {
    plan: Option<Rc<Plan>>,
}

impl Context for Root {}

impl RootContext for Root {
    // A plan that does not parse fails the plugin's configuration: Envoy rejects the listener update
    // rather than serving a flow it cannot run.
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            proxy_wasm::hostcalls::log(LogLevel::Error, "flows-wasm: no plugin configuration").ok();
            return false;
        };
        match Plan::parse(&bytes) {
            Ok(p) => {
                self.plan = Some(Rc::new(p));
                true
            }
            Err(e) => {
                proxy_wasm::hostcalls::log(LogLevel::Error, &format!("flows-wasm: bad plan: {e}")).ok();
                false
            }
        }
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        let plan = self.plan.clone()?;
        let n = plan.calls.len();
        Some(Box::new(Flow { plan, tokens: Vec::with_capacity(n), results: vec![None; n], pending: 0, answered: false }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// What one call left for the reply: its body (raw JSON, or reshaped), or why it failed.
#[derive(Clone)]
enum Outcome {
    Json(Vec<u8>),
    Failed(String),
}

struct Flow {
    plan: Rc<Plan>,
    tokens: Vec<u32>,
    results: Vec<Option<Outcome>>,
    pending: usize,
    answered: bool,
}

impl Flow {
    fn fail(&mut self, status: u32, detail: &str) {
        self.answered = true;
        let body = plan::problem(status, detail);
        self.send_http_response(status, vec![("content-type", "application/problem+json")], Some(body.as_bytes()));
    }

    /// The call's result as the reply needs it: a non-2xx answer, a body that is not JSON or a
    /// transport failure (no :status: reset, timeout, no healthy host) is a failure.
    fn outcome(&self, call: &Call, body_size: usize) -> Outcome {
        let Some(status) = self.get_http_call_response_header(":status") else {
            return Outcome::Failed("no response (timeout or connection failure)".into());
        };
        if !status.starts_with('2') {
            return Outcome::Failed(format!("answered {status}"));
        }
        let body = self.get_http_call_response_body(0, body_size).unwrap_or_default();
        match plan::reshape(&call.shape, &body) {
            Ok(b) => Outcome::Json(b),
            Err(e) => Outcome::Failed(e),
        }
    }

    fn reply(&mut self) {
        let mut out = Vec::with_capacity(256);
        out.push(b'{');
        for (i, key) in self.plan.reply.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&key.name_json);
            out.push(b':');
            let call = &self.plan.calls[key.call];
            match &self.results[key.call] {
                Some(Outcome::Json(b)) => out.extend_from_slice(b),
                Some(Outcome::Failed(why)) => match &call.fallback {
                    Some(f) => out.extend_from_slice(f),
                    None => {
                        let detail = format!("step {} failed: {}", call.name, why);
                        return self.fail(502, &detail);
                    }
                },
                None => return self.fail(502, "a step did not answer"),
            }
        }
        out.push(b'}');
        self.answered = true;
        self.send_http_response(200, vec![("content-type", "application/json")], Some(&out));
    }
}

impl Context for Flow {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let Some(i) = self.tokens.iter().position(|t| *t == token) else { return };
        let plan = self.plan.clone();
        let outcome = self.outcome(&plan.calls[i], body_size);
        // A failed step with no fallback fails the flow now: no need to wait for the others.
        if let (Outcome::Failed(why), None) = (&outcome, &plan.calls[i].fallback) {
            if !self.answered {
                let detail = format!("step {} failed: {}", plan.calls[i].name, why);
                self.fail(502, &detail);
            }
            return;
        }
        self.results[i] = Some(outcome);
        self.pending -= 1;
        if self.pending == 0 && !self.answered {
            self.reply();
        }
    }
}

impl HttpContext for Flow {
    fn on_http_request_headers(&mut self, _n: usize, _end_of_stream: bool) -> Action {
        let plan = self.plan.clone();
        // The bench's control: the same filter answering a fixed body, no calls (the VM's own share).
        if let Some(body) = &plan.static_body {
            self.answered = true;
            self.send_http_response(200, vec![("content-type", "application/json")], Some(body));
            return Action::Pause;
        }
        let path = self.get_http_request_header(":path").unwrap_or_default();
        let headers = plan.headers.iter().map(|h| (h.clone(), self.get_http_request_header(h))).collect();
        let values = RequestValues::new(&path, headers);
        for call in &plan.calls {
            let target = match call.target(&values) {
                Ok(t) => t,
                Err(e) => {
                    self.fail(400, &e);
                    return Action::Pause;
                }
            };
            let headers = vec![(":method", "GET"), (":path", target.as_str()), (":authority", call.cluster.as_str()), ("accept", "application/json")];
            match self.dispatch_http_call(&call.cluster, headers, None, vec![], Duration::from_millis(call.timeout_ms)) {
                Ok(token) => {
                    self.tokens.push(token);
                    self.pending += 1;
                }
                Err(_) => {
                    // Unknown cluster or the call could not start: the same as a failed call.
                    if call.fallback.is_none() {
                        let detail = format!("step {} failed: could not be sent", call.name);
                        self.fail(502, &detail);
                        return Action::Pause;
                    }
                    self.tokens.push(u32::MAX);
                }
            }
        }
        for (i, call) in plan.calls.iter().enumerate() {
            if self.tokens[i] == u32::MAX {
                self.results[i] = Some(Outcome::Failed(format!("step {} could not be sent", call.name)));
            }
        }
        if self.pending == 0 && !self.answered {
            self.reply();
        }
        Action::Pause
    }
}
