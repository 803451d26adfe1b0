//! The core's `HttpClient` over `worker::Fetch`: redirects not followed (`redirect: "manual"`),
//! the whole body read, a timeout that aborts the subrequest. And the injected clock.

use core::pin::pin;
use core::time::Duration;

use edge_oauth_core::env::Clock;
use edge_oauth_core::{HttpClient, HttpRequest, HttpResponse, TransportError};
use futures_util::future::{Either, select};
use worker::{
    AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect,
};

/// Wall-clock seconds from `Date.now()` (which the runtime advances only across I/O).
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerClock;

impl Clock for WorkerClock {
    fn now(&self) -> u64 {
        (worker::js_sys::Date::now() / 1000.0) as u64
    }
}

/// Sends the core's requests with the Workers runtime's `fetch`.
#[derive(Clone, Copy, Debug)]
pub struct WorkerHttp {
    timeout: Duration,
}

impl WorkerHttp {
    /// A client whose requests time out after `timeout_ms`.
    pub fn new(timeout_ms: u64) -> Self {
        Self {
            timeout: Duration::from_millis(timeout_ms),
        }
    }
}

fn transport(e: worker::Error) -> TransportError {
    // The runtime's message names the failure, never the request body.
    TransportError::new(e.to_string())
}

impl HttpClient for WorkerHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let headers = Headers::new();
        for (name, value) in &request.headers {
            headers.append(name, value).map_err(transport)?;
        }
        let mut init = RequestInit::new();
        init.with_method(match request.method {
            edge_oauth_core::Method::Get => Method::Get,
            edge_oauth_core::Method::Post => Method::Post,
            edge_oauth_core::Method::Delete => Method::Delete,
        })
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual);
        if let Some(body) = &request.body {
            init.with_body(Some(
                worker::js_sys::Uint8Array::from(body.as_slice()).into(),
            ));
        }
        let req = Request::new_with_init(&request.url, &init).map_err(transport)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(req);
        let sent = pin!(fetch.send_with_signal(&signal));
        let timer = pin!(Delay::from(self.timeout));
        let mut response = match select(sent, timer).await {
            Either::Left((result, _)) => result.map_err(transport)?,
            Either::Right(_) => {
                controller.abort();
                return Err(TransportError::new(format!(
                    "no answer within {} ms",
                    self.timeout.as_millis()
                )));
            }
        };
        let status = response.status_code();
        let headers = response.headers().entries().collect();
        let body = response.bytes().await.map_err(transport)?;
        Ok(HttpResponse::new(status, headers, body))
    }
}
