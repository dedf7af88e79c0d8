//! The fixed upstream every scenario proxies to: `/page.html` (20 KB of HTML), `/data.json`
//! (2 KB), `/auth` (204, for nginx's auth_request) and `/big.html` (100 MB of HTML streamed
//! in 64 KiB chunks, for the banner's memory measurement).
use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::{Request, Response};

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn page() -> Bytes {
    Bytes::from(actas_bench::page())
}

fn json() -> Bytes {
    let items: Vec<String> = (0..40)
        .map(|i| format!("{{\"id\":{i},\"name\":\"item-{i:04}\",\"ok\":true}}"))
        .collect();
    let mut s = format!("{{\"items\":[{}]}}", items.join(","));
    while s.len() < 2048 {
        s.insert(s.len() - 1, ' ');
    }
    Bytes::from(s)
}

async fn serve(
    req: Request<hyper::body::Incoming>,
    page: Bytes,
    json: Bytes,
) -> Result<Response<Body>, Infallible> {
    let full = |ct: &str, b: Bytes| {
        Response::builder()
            .header("content-type", ct)
            .body(Full::new(b).boxed())
            .unwrap_or_default()
    };
    Ok(match req.uri().path() {
        "/page.html" => full("text/html; charset=utf-8", page),
        "/data.json" => full("application/json", json),
        "/auth" => Response::builder()
            .status(204)
            .body(Full::new(Bytes::new()).boxed())
            .unwrap_or_default(),
        "/big.html" => {
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let head = Bytes::from_static(
                b"<!doctype html><html><head><title>big</title></head><body><pre>",
            );
            let n = 100 * 1024 * 1024 / chunk.len();
            let frames = std::iter::once(head)
                .chain(std::iter::repeat_n(chunk, n))
                .chain(std::iter::once(Bytes::from_static(b"</pre></body></html>")))
                .map(|b| Ok::<_, Infallible>(Frame::data(b)));
            let stream = futures_stream(frames);
            Response::builder()
                .header("content-type", "text/html")
                .body(stream.boxed())
                .unwrap_or_default()
        }
        _ => Response::builder()
            .status(404)
            .body(Full::new(Bytes::new()).boxed())
            .unwrap_or_default(),
    })
}

fn futures_stream<
    I: Iterator<Item = Result<Frame<Bytes>, Infallible>> + Send + Sync + Unpin + 'static,
>(
    it: I,
) -> impl hyper::body::Body<Data = Bytes, Error = Infallible> + Send + Sync + 'static {
    struct Iter<I>(I);
    impl<I: Iterator<Item = Result<Frame<Bytes>, Infallible>> + Unpin> hyper::body::Body for Iter<I> {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(it)
}

fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18080".into())
        .parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let (page, json) = (page(), json());
        loop {
            let (stream, _) = listener.accept().await?;
            let (page, json) = (page.clone(), json.clone());
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req| serve(req, page.clone(), json.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}
