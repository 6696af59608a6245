//! A large download through an upstream streams: the real `login-bridge` binary in its own
//! process proxies 50 MB from a local upstream, and its resident memory (VmRSS, sampled while
//! the body flows) must stay flat.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::{Router, body::Body, routing::get};
use futures::StreamExt;

const TOTAL: usize = 50 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_50_mb_download_streams_through_the_bridge_with_flat_memory() {
    // The upstream: 50 MB made on the fly, in 64 KiB chunks.
    let app = Router::new().route(
        "/data",
        get(|| async {
            let chunks = futures::stream::iter(0..TOTAL / CHUNK)
                .map(|i| Ok::<_, std::io::Error>(vec![(i % 251) as u8; CHUNK]));
            Body::from_stream(chunks)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let mut bridge = common::Bridge::start(upstream, "").await;
    let (pid, base) = (bridge.pid(), bridge.base.clone());
    let http = reqwest::Client::new();
    let token = common::gateway_token();

    // Warm up (connection pools, allocator), then take the baseline.
    let warm = http
        .get(format!("{base}/files/data"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    let mut body = warm.bytes_stream();
    let mut n = 0;
    while let Some(chunk) = body.next().await {
        n += chunk.unwrap().len();
        if n > 4 * 1024 * 1024 {
            break;
        }
    }
    drop(body);
    let baseline = rss_kib(pid);

    let r = http
        .get(format!("{base}/files/data"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let (mut received, mut peak, mut chunks) = (0usize, baseline, 0u64);
    while let Some(chunk) = body.next().await {
        received += chunk.unwrap().len();
        chunks += 1;
        if chunks % 16 == 0 {
            peak = peak.max(rss_kib(pid));
        }
    }
    peak = peak.max(rss_kib(pid));
    assert_eq!(received, TOTAL, "the whole body arrived");
    let growth_mib = (peak.saturating_sub(baseline)) as f64 / 1024.0;
    println!("bridge RSS: baseline {baseline} KiB, peak {peak} KiB, growth {growth_mib:.1} MiB");
    assert!(
        growth_mib < 20.0,
        "the bridge buffered the body: RSS grew by {growth_mib:.1} MiB"
    );
    bridge.process.kill().await.unwrap();
}
