// Portico's flows Wasm filter (proxy-wasm ABI, Envoy's V8 runtime): runs the flows marked
// `execution: envoy` inside the gateway's Envoy, so an aggregation needs no hop to the flow runtime.
// The translator puts one instance in the chain of a group where some flow runs in Envoy, switched
// off on the group's other routes; its plugin configuration holds every such route's plan keyed by route name
// (src/model/native-flow.ts builds them, plan.rs reads them), and the filter picks the plan by
// Envoy's xds.route_name. Calls go to the services' own clusters with Envoy's HTTP client.
mod plan;

use plan::{Call, Plan, RequestValues, RoutePlans};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { plans: Rc::new(HashMap::new()) }) });
}}

/// A route's plan and its step metrics (ids of Envoy stats, one set per call).
struct RoutePlan {
    plan: Plan,
    metrics: Vec<StepMetrics>,
}

#[derive(Clone, Copy)]
struct StepMetrics {
    ok: u32,
    failed: u32,
    duration: u32,
}

type Plans = Rc<HashMap<String, Rc<RoutePlan>>>;

struct Root {
    plans: Plans,
}

impl Context for Root {}

fn metric(kind: MetricType, name: &str) -> u32 {
    hostcalls::define_metric(kind, name).unwrap_or(u32::MAX)
}

impl RootContext for Root {
    // A configuration that does not parse fails the plugin: Envoy rejects the listener update and
    // keeps serving the previous one rather than a flow it cannot run.
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            hostcalls::log(LogLevel::Error, "portico flows: no plugin configuration").ok();
            return false;
        };
        match RoutePlans::parse(&bytes) {
            Ok(routes) => {
                self.plans = Rc::new(routes
                    .into_iter()
                    .map(|(route, plan)| {
                        // Envoy stats: portico_flows.<product>.<route>.<step>.{ok,failed,duration_ms}
                        // (Envoy prefixes wasmcustom.). Defining an existing name returns its id.
                        let prefix = format!("portico_flows.{}", route.replace('/', "."));
                        let metrics = plan
                            .calls
                            .iter()
                            .map(|c| StepMetrics {
                                ok: metric(MetricType::Counter, &format!("{prefix}.{}.ok", c.name)),
                                failed: metric(MetricType::Counter, &format!("{prefix}.{}.failed", c.name)),
                                duration: metric(MetricType::Histogram, &format!("{prefix}.{}.duration_ms", c.name)),
                            })
                            .collect();
                        (route, Rc::new(RoutePlan { plan, metrics }))
                    })
                    .collect());
                true
            }
            Err(e) => {
                hostcalls::log(LogLevel::Error, &format!("portico flows: bad configuration: {e}")).ok();
                false
            }
        }
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Flow { route: None, tokens: Vec::new(), results: Vec::new(), started: SystemTime::UNIX_EPOCH, pending: 0, answered: false, plans: self.plans.clone() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// What one call left for the reply: its body (raw JSON, or reshaped), or how it failed.
#[derive(Clone)]
enum Outcome {
    Json(Vec<u8>),
    Failed { timeout: bool, message: String },
}

/// The body of the 504 Envoy answers for a call that passed its timeout (its router's local reply).
const ENVOY_TIMEOUT_BODY: &[u8] = b"upstream request timeout";

struct Flow {
    /// Every route's plan (the root's, shared).
    plans: Plans,
    route: Option<Rc<RoutePlan>>,
    tokens: Vec<u32>,
    results: Vec<Option<Outcome>>,
    started: SystemTime,
    pending: usize,
    answered: bool,
}

impl Flow {
    /// The runtime's error answers (src/flows/run-state.ts): the same statuses, codes and shape.
    fn error(&mut self, status: u32, body: String) {
        self.answered = true;
        self.send_http_response(status, vec![("content-type", "application/json")], Some(body.as_bytes()));
    }

    fn step_failed(&mut self, call: &Call, timeout: bool, message: &str) {
        let (status, code) = if timeout { (504, "flow_step_timeout") } else { (502, "flow_step_failed") };
        let body = plan::step_error_body(code, &call.name, message);
        self.error(status, body);
    }

    /// The call's result as the reply needs it: a non-2xx answer, a body that is not JSON, a
    /// transport failure or the step's timeout is a failure.
    fn outcome(&self, call: &Call, body_size: usize) -> Outcome {
        let elapsed = self.get_current_time().duration_since(self.started).unwrap_or_default();
        let status = self.get_http_call_response_header(":status");
        // Envoy ends a call past its timeout with its own 504 "upstream request timeout". The host's
        // clock is not precise enough to tell that from an upstream's 504 by the elapsed time alone
        // (under load it read less than the timeout when the call's timer had fired), so the body decides.
        let envoy_timeout = status.as_deref() == Some("504")
            && (elapsed >= Duration::from_millis(call.timeout_ms)
                || self.get_http_call_response_body(0, body_size).as_deref() == Some(ENVOY_TIMEOUT_BODY));
        if envoy_timeout || (status.is_none() && elapsed >= Duration::from_millis(call.timeout_ms)) {
            return Outcome::Failed { timeout: true, message: format!("{} did not answer within {} ms", call.service, call.timeout_ms) };
        }
        let Some(status) = status else {
            return Outcome::Failed { timeout: false, message: format!("{} could not be reached", call.service) };
        };
        if !status.starts_with('2') {
            return Outcome::Failed { timeout: false, message: format!("{} answered {status}", call.service) };
        }
        let body = self.get_http_call_response_body(0, body_size).unwrap_or_default();
        match plan::reshape(&call.shape, &body) {
            Ok(b) => Outcome::Json(b),
            Err(e) => Outcome::Failed { timeout: false, message: format!("{} answered with a body that {e}", call.service) },
        }
    }

    fn reply(&mut self) {
        let Some(route) = self.route.clone() else { return };
        let plan = &route.plan;
        let mut out = Vec::with_capacity(256);
        let mut incomplete: Vec<&str> = Vec::new();
        out.push(b'{');
        for (i, key) in plan.reply.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&key.name_json);
            out.push(b':');
            let call = &plan.calls[key.call];
            match &self.results[key.call] {
                Some(Outcome::Json(b)) => out.extend_from_slice(b),
                Some(Outcome::Failed { .. }) => match &call.fallback {
                    Some(f) => out.extend_from_slice(f),
                    None => return self.error(502, plan::step_error_body("flow_step_failed", &call.name, "no answer")),
                },
                None => return self.error(500, plan::error_body("flow_error", "The flow failed: a step did not answer.")),
            }
        }
        out.push(b'}');
        for (i, c) in plan.calls.iter().enumerate() {
            if matches!(self.results[i], Some(Outcome::Failed { .. })) && c.fallback.is_some() {
                incomplete.push(&c.name);
            }
        }
        self.answered = true;
        let list = incomplete.join(",");
        let mut headers = vec![("content-type", "application/json")];
        if !list.is_empty() {
            headers.push(("x-portico-flow-incomplete", list.as_str()));
        }
        self.send_http_response(200, headers, Some(&out));
    }
}

impl Context for Flow {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let Some(route) = self.route.clone() else { return };
        let Some(i) = self.tokens.iter().position(|t| *t == token) else { return };
        let call = &route.plan.calls[i];
        let outcome = self.outcome(call, body_size);
        let m = route.metrics[i];
        let ms = self.get_current_time().duration_since(self.started).unwrap_or_default().as_millis() as u64;
        hostcalls::record_metric(m.duration, ms).ok();
        hostcalls::increment_metric(if matches!(outcome, Outcome::Json(_)) { m.ok } else { m.failed }, 1).ok();
        // A failed step with no fallback fails the flow now: no need to wait for the others.
        if let (Outcome::Failed { timeout, message }, None) = (&outcome, &call.fallback) {
            if !self.answered {
                self.step_failed(call, *timeout, message);
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
        let name = self.get_property(vec!["xds", "route_name"]).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        // No plan for this route (or no route: the router answers 404): not a flow that runs here.
        let Some(route) = self.plans.get(&name).cloned() else {
            return Action::Continue;
        };
        let n = route.plan.calls.len();
        self.results = vec![None; n];
        self.tokens = Vec::with_capacity(n);
        self.started = self.get_current_time();
        self.route = Some(route.clone());
        let plan = &route.plan;
        let path = self.get_http_request_header(":path").unwrap_or_default();
        let headers = plan.headers.iter().map(|h| (h.clone(), self.get_http_request_header(h))).collect();
        let values = RequestValues::new(&path, headers);
        for (i, call) in plan.calls.iter().enumerate() {
            let target = match call.target(&values) {
                Ok(t) => t,
                Err(e) => {
                    self.error(400, plan::error_body("bad_request", &e));
                    return Action::Pause;
                }
            };
            let headers = vec![(":method", "GET"), (":path", target.as_str()), (":authority", call.service.as_str()), ("accept", "application/json")];
            match self.dispatch_http_call(&call.cluster, headers, None, vec![], Duration::from_millis(call.timeout_ms)) {
                Ok(token) => {
                    self.tokens.push(token);
                    self.pending += 1;
                }
                Err(_) => {
                    // The call could not start (no such cluster): the same as a call that failed.
                    self.tokens.push(u32::MAX);
                    let message = format!("{} could not be reached", call.service);
                    if call.fallback.is_none() {
                        self.step_failed(call, false, &message);
                        return Action::Pause;
                    }
                    self.results[i] = Some(Outcome::Failed { timeout: false, message });
                }
            }
        }
        if self.pending == 0 && !self.answered {
            self.reply();
        }
        Action::Pause
    }
}
