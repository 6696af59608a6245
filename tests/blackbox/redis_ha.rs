//! The shared store is never a single point of failure: two bridges on a Redis Sentinel
//! deployment (a primary, a replica, three sentinels), then on a Redis Cluster (three
//! primaries with a replica each), under load; the primary is killed with `kill -9`.
//!
//! What each test proves: the bridges reconnect by themselves (no restart) once the
//! deployment promoted the replica (asked of the sentinels or the cluster, not slept for);
//! every session made before the fault still works after it; calls during the failover get
//! 200 or a clean 503, never anything else, and none fails once the failover completed; the
//! refresh that falls due afterwards, raced by concurrent calls at both replicas, happens once
//! per session at the provider. Beside the bridges, probe writers measure what the failover
//! can lose: writes the killed primary acknowledged but had not yet replicated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use fred::{
    clients::Pool,
    interfaces::KeysInterface,
    types::{Expiration, SetOptions},
};
use login_bridge::settings::StoreKind;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{
    redis_ha::{ClusterSet, SentinelSet, await_replicated},
    *,
};

/// Sessions under load (each called at both replicas at once, in a loop).
const SESSIONS: usize = 4;
/// The provider's access-token lifetime and the bridge's refresh margin: a session signed in
/// at t refreshes at t + 20 s, after the failover (a few seconds) has completed.
const TOKEN_TTL: u64 = 24;
const REFRESH_MARGIN: u64 = 4;

enum Deployment {
    Sentinel(SentinelSet),
    Cluster(ClusterSet),
}

impl Deployment {
    fn url(&self) -> String {
        match self {
            Self::Sentinel(s) => s.url(),
            Self::Cluster(c) => c.url(),
        }
    }

    /// Waits until the replica has what the primary has, then kills the primary; returns
    /// its port.
    async fn kill_primary(&mut self) -> u16 {
        match self {
            Self::Sentinel(s) => {
                await_replicated(s.primary().await, s.replica().await).await;
                s.kill_primary().await
            }
            Self::Cluster(c) => {
                let (primary, replica) = c.a_primary_and_its_replica().await;
                await_replicated(primary, replica).await;
                c.kill(primary).await;
                primary
            }
        }
    }

    /// Stops (SIGSTOP) a primary that holds a session, once its replica has everything;
    /// returns its port.
    async fn hang_a_primary_with_sessions(&mut self) -> u16 {
        match self {
            Self::Sentinel(s) => {
                await_replicated(s.primary().await, s.replica().await).await;
                s.signal_primary("-STOP").await
            }
            Self::Cluster(c) => {
                let (primary, replica) = c.a_primary_with_sessions().await;
                await_replicated(primary, replica).await;
                c.signal(primary, "-STOP");
                primary
            }
        }
    }

    async fn await_promotion(&self, old: u16) {
        match self {
            Self::Sentinel(s) => {
                s.await_promotion(old).await;
            }
            Self::Cluster(c) => c.await_promotion(old).await,
        }
    }
}

/// One call of the load: when it started, which session, its status and token.
struct Call {
    started: Instant,
    session: usize,
    status: StatusCode,
    token: Option<String>,
}

async fn call(address: &str, client: &reqwest::Client, session: usize) -> Call {
    let started = Instant::now();
    let r = session_at(client, address).await;
    let status = r.status();
    let token = if status == StatusCode::OK {
        r.json::<shared::session::SessionInfo>()
            .await
            .ok()
            .map(|i| i.auth_token)
    } else {
        None
    };
    Call {
        started,
        session,
        status,
        token,
    }
}

/// Waits until `/readyz` answers 200 at `address` (the bridge reports its store usable).
async fn await_ready(address: &str) {
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let r = reqwest::get(format!("{address}/readyz")).await;
            if r.is_ok_and(|r| r.status() == StatusCode::OK) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(ready.is_ok(), "{address} not ready within 30 s");
}

/// Writers that `SET` probe keys as fast as they can and remember when each was
/// acknowledged, to find out which acknowledged writes the failover lost.
struct Probe {
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<Vec<(String, Instant)>>>,
    pool: Pool,
}

impl Probe {
    async fn start(url: &str) -> Self {
        let pool = login_bridge::session::redis::connect(url).await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writers = (0..4)
            .map(|w| {
                let pool = pool.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut acked = Vec::new();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let key = format!("probe:{w}:{n}");
                        let set: Result<Option<String>, _> = pool
                            .set(
                                &key,
                                1,
                                Some(Expiration::EX(600)),
                                Some(SetOptions::NX),
                                false,
                            )
                            .await;
                        match set {
                            Ok(_) => acked.push((key, Instant::now())),
                            // Refused or timed out: not acknowledged, so not counted.
                            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                    acked
                })
            })
            .collect();
        Self {
            stop,
            writers,
            pool,
        }
    }

    /// Stops the writers and reads every acknowledged key back: (acknowledged, lost, how
    /// long before `killed_at` the oldest lost write was acknowledged).
    async fn lost(self, killed_at: Instant) -> (usize, usize, Option<Duration>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut acked = Vec::new();
        for w in self.writers {
            acked.extend(w.await.unwrap());
        }
        let mut lost = Vec::new();
        for chunk in acked.chunks(64) {
            let reads = chunk.iter().map(|(key, at)| {
                let pool = self.pool.clone();
                async move {
                    let n: i64 = pool.exists(key.as_str()).await.unwrap();
                    (n, *at)
                }
            });
            for (n, at) in futures::future::join_all(reads).await {
                if n == 0 {
                    lost.push(at);
                }
            }
        }
        let window = lost
            .iter()
            .map(|at| killed_at.saturating_duration_since(*at))
            .max();
        (acked.len(), lost.len(), window)
    }
}

async fn failover_under_load(mut deployment: Deployment, name: &str) {
    let test_started = Instant::now();
    let url = deployment.url();
    // The token authority too: its scripts touch several keys at once (a cluster refuses
    // them unless the keys share a slot).
    let kek_dir = tempfile::tempdir().unwrap();
    let kek = kek_dir.path().join("kek");
    login_bridge::authority::keyring::write_new_kek(&kek).unwrap();
    let a = spawn_app_with(AppOptions {
        store: Some((StoreKind::Redis, url.clone())),
        access_token_ttl: TOKEN_TTL,
        refresh_before_expiry_secs: REFRESH_MARGIN,
        authority: Some(json!({
            "issuer": "https://bridge.ha.test",
            "key_encryption_key_file": kek.display().to_string(),
        })),
        ..AppOptions::default()
    })
    .await;
    let b = a.replica().await;

    // Sessions made before the fault.
    let mut clients = Vec::new();
    let mut first_tokens = Vec::new();
    let mut first_due = i64::MAX;
    for _ in 0..SESSIONS {
        let client = browser();
        a.sign_in(&client, "alice", "wonderland").await;
        let info = b.session_info(&client).await;
        first_due = first_due.min(info.expires_at - REFRESH_MARGIN as i64);
        first_tokens.push(info.auth_token);
        clients.push(client);
    }
    assert_eq!(a.idp.stat("token_requests.refresh_token").await, 0);

    // The load: every session called at both replicas at once, again and again.
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(Mutex::new(Vec::<Call>::new()));
    let made = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let (client, stop, calls, made) =
            (client.clone(), stop.clone(), calls.clone(), made.clone());
        let (a, b) = (a.address.clone(), b.address.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (x, y) = tokio::join!(call(&a, &client, i), call(&b, &client, i));
                made.fetch_add(2, Ordering::Relaxed);
                let pause = x.status != StatusCode::OK || y.status != StatusCode::OK;
                calls.lock().unwrap().extend([x, y]);
                if pause {
                    // A 503 comes back at once during the failover: don't spin.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    let probe = Probe::start(&url).await;
    // The load is running (an event: calls were answered) before the fault.
    while made.load(Ordering::Relaxed) < 40 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let old = deployment.kill_primary().await;
    let killed_at = Instant::now();
    deployment.await_promotion(old).await;
    let promoted_at = Instant::now();
    await_ready(&a.address).await;
    await_ready(&b.address).await;
    let completed = Instant::now();
    assert!(
        now() < first_due,
        "the failover took too long for this test: the first refresh fell due during it"
    );

    // Keep the load on until every session has refreshed (its token due after the failover).
    let refreshed = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let seen = {
                let calls = calls.lock().unwrap();
                let mut tokens: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
                for c in calls.iter() {
                    if let Some(t) = &c.token {
                        tokens.entry(c.session).or_default().insert(t);
                    }
                }
                (0..SESSIONS).all(|i| tokens.get(&i).is_some_and(|t| t.len() >= 2))
            };
            if seen {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (acked, lost, window) = probe.lost(killed_at).await;
    let calls = std::mem::take(&mut *calls.lock().unwrap());
    assert!(refreshed.is_ok(), "not every session refreshed");

    // During the failover: 200 or a clean 503, nothing else (no session lost: no 401).
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for c in &calls {
        *by_status.entry(c.status.as_u16()).or_default() += 1;
    }
    let failed_after: Vec<_> = calls
        .iter()
        .filter(|c| c.started >= completed && c.status != StatusCode::OK)
        .map(|c| c.status)
        .collect();
    let after = calls.iter().filter(|c| c.started >= completed).count();
    eprintln!(
        "{name}: primary killed; promoted after {:?}, both bridges ready {:?} later; \
         calls by status {by_status:?}, {after} after the failover completed; \
         probe: {acked} acknowledged writes, {lost} lost, the oldest lost acknowledged \
         {window:?} before the kill; test took {:?}",
        promoted_at - killed_at,
        completed - promoted_at,
        test_started.elapsed()
    );
    assert!(
        by_status.keys().all(|&s| s == 200 || s == 503),
        "only 200 or 503 during the failover: {by_status:?}"
    );
    assert!(after >= 20, "the load went on after the failover: {after}");
    assert!(
        failed_after.is_empty(),
        "no failure once the failover completed: {failed_after:?}"
    );

    // Refresh stayed single across replicas: one refresh per session at the provider, though
    // each due session was called at both replicas at once.
    assert_eq!(
        a.idp.stat("token_requests.refresh_token").await,
        SESSIONS as u64,
        "one provider refresh per session"
    );
    // Every session made before the fault still works, at either replica, with its one new
    // token.
    for (i, client) in clients.iter().enumerate() {
        let at_a = a.session_info(client).await;
        let at_b = b.session_info(client).await;
        assert_eq!(at_a.auth_token, at_b.auth_token);
        assert_ne!(at_a.auth_token, first_tokens[i]);
        assert_eq!(
            b.api_get("/api/me", Some(&at_a.auth_token)).await.status(),
            StatusCode::OK
        );
    }
    // A write acknowledged by the primary can only be lost if it was acknowledged just before
    // the kill (the replication lag, well under a second on loopback).
    if let Some(window) = window {
        assert!(
            window < Duration::from_secs(1),
            "lost writes acknowledged {window:?} before the kill"
        );
    }
}

#[tokio::test]
async fn a_sentinel_failover_under_load_keeps_sessions_and_refreshes_once_without_a_restart() {
    failover_under_load(Deployment::Sentinel(SentinelSet::start().await), "sentinel").await;
}

#[tokio::test]
async fn a_cluster_primary_lost_under_load_keeps_sessions_and_refreshes_once_without_a_restart() {
    failover_under_load(Deployment::Cluster(ClusterSet::start().await), "cluster").await;
}

/// A session record as tower-sessions writes it, with `bytes` of data.
fn record(bytes: usize) -> tower_sessions::session::Record {
    tower_sessions::session::Record {
        id: tower_sessions::session::Id::default(),
        data: [("pad".to_string(), json!("x".repeat(bytes)))].into(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::minutes(10),
    }
}

#[tokio::test]
async fn writes_the_primary_acknowledged_can_be_lost_in_a_failover_unless_a_replica_confirmed_them()
{
    use login_bridge::session::redis::{RedisRecords, connect};
    use tower_sessions::SessionStore;

    let mut set = SentinelSet::start().await;
    let pool = connect(&set.url()).await.unwrap();
    let acknowledged = RedisRecords::new(pool.clone(), 0);
    let confirmed = RedisRecords::new(pool.clone(), 1);
    // With its replica in step, a write waiting for one replica goes through.
    let mut before = record(64);
    confirmed.create(&mut before).await.unwrap();

    // The replica stalls (SIGSTOP: its connection stays open, as in a slow network), and the
    // primary goes on acknowledging. 32 MiB of writes: more than the kernel's socket buffers
    // hold for the replica, so some never leave the primary.
    set.signal_replica("-STOP").await;
    let mut written = Vec::new();
    for _ in 0..128 {
        let mut r = record(256 * 1024);
        acknowledged.create(&mut r).await.unwrap();
        written.push(r.id);
    }
    // Waiting for a replica, the same write is refused (the bridge answers 503), not
    // acknowledged and then lost.
    let started = Instant::now();
    let mut unconfirmed = record(64);
    let refused = confirmed.create(&mut unconfirmed).await;
    assert!(refused.is_err(), "no replica confirmed it: {refused:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let old = set.kill_primary().await;
    set.signal_replica("-CONT").await;
    let new = set.await_promotion(old).await;
    assert_ne!(new, old);

    // What the primary acknowledged but never replicated is gone; what a replica confirmed
    // is not.
    let mut lost = 0;
    for id in &written {
        let loaded = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match acknowledged.load(id).await {
                    Ok(r) => return r,
                    // The pool finds the new primary a moment after the promotion.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
        .await
        .unwrap();
        if loaded.is_none() {
            lost += 1;
        }
    }
    eprintln!(
        "stalled replica: {lost} of {} acknowledged writes (256 KiB each) lost in the failover",
        written.len()
    );
    assert!(lost > 0, "a stalled replica loses acknowledged writes");
    assert!(
        acknowledged.load(&before.id).await.unwrap().is_some(),
        "the confirmed write survived"
    );
}

#[tokio::test]
async fn with_redis_wait_replicas_a_sign_in_no_replica_confirmed_is_refused_and_then_works_again() {
    let set = SentinelSet::start().await;
    let app = spawn_app_with(AppOptions {
        store: Some((StoreKind::Redis, set.url())),
        redis_wait_replicas: 1,
        ..AppOptions::default()
    })
    .await;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    assert_eq!(app.session(&client).await.status(), StatusCode::OK);

    // The replica stalls: a new sign-in cannot be confirmed, so it is refused with a clean
    // 503 rather than acknowledged and perhaps lost in a failover.
    set.signal_replica("-STOP").await;
    let r = browser()
        .get(format!("{}/auth/login?return_to=%2F", app.address))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let page = r.text().await.unwrap();
    set.signal_replica("-CONT").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
    assert!(page.contains("not possible right now"), "{page}");
    assert!(!page.to_lowercase().contains("redis") && !page.contains("replica"));

    // The replica back (caught up: an event the primary reports), sign-in works again, and
    // the earlier session never stopped working.
    await_replicated(set.primary().await, set.replica().await).await;
    let again = browser();
    app.sign_in(&again, "bob", "builder").await;
    assert_eq!(app.session(&again).await.status(), StatusCode::OK);
    assert_eq!(app.session(&client).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn on_a_cluster_a_write_waits_for_the_replica_of_its_own_primary() {
    use login_bridge::session::redis::{RedisRecords, connect};
    use tower_sessions::SessionStore;

    let set = ClusterSet::start().await;
    let pool = connect(&set.url()).await.unwrap();
    let confirmed = RedisRecords::new(pool, 1);
    let mut r = record(64);
    confirmed.create(&mut r).await.unwrap();
    let (_, own) = set.primary_and_replica_of(&r.id.to_string()).await;

    // Another primary's replica stalls: this record's writes are still confirmed (its
    // `WAIT` went to its own primary, whose replica is fine).
    let other = set
        .replicas()
        .await
        .into_iter()
        .find(|&p| p != own)
        .unwrap();
    set.signal(other, "-STOP");
    let saved = confirmed.save(&r).await;
    set.signal(other, "-CONT");
    saved.unwrap();

    // Its own primary's replica stalls: not confirmed. (A `WAIT` sent to another primary,
    // which this connection wrote nothing to, would have answered at once.)
    // Three tries: a `WAIT` sent to a random primary would get through twice in three.
    set.signal(own, "-STOP");
    let mut saved = Vec::new();
    for _ in 0..3 {
        saved.push(confirmed.save(&r).await);
    }
    set.signal(own, "-CONT");
    assert!(saved.iter().all(Result::is_err), "{saved:?}");
}

async fn a_hung_primary_is_left_for_the_promoted_replica(mut deployment: Deployment) {
    let app = spawn_app_with(AppOptions {
        store: Some((StoreKind::Redis, deployment.url())),
        ..AppOptions::default()
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let client = browser();
        app.sign_in(&client, "alice", "wonderland").await;
        clients.push(client);
    }

    // SIGSTOP: the primary's connections stay open but nothing answers (as behind a network
    // partition); nothing tells the bridge to reconnect but the silence itself. On a cluster,
    // the primary holding a session.
    let hung = deployment.hang_a_primary_with_sessions().await;
    deployment.await_promotion(hung).await;
    await_ready(&app.address).await;
    for client in &clients {
        assert_eq!(
            app.session(client).await.status(),
            StatusCode::OK,
            "a session made before the fault"
        );
    }
    let fresh = browser();
    app.sign_in(&fresh, "bob", "builder").await;
    assert_eq!(app.session(&fresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_sentinel_primary_that_hangs_instead_of_dying_is_left_without_a_restart() {
    a_hung_primary_is_left_for_the_promoted_replica(Deployment::Sentinel(
        SentinelSet::start().await,
    ))
    .await;
}

#[tokio::test]
async fn a_cluster_primary_that_hangs_instead_of_dying_is_left_without_a_restart() {
    a_hung_primary_is_left_for_the_promoted_replica(Deployment::Cluster(ClusterSet::start().await))
        .await;
}

#[tokio::test]
async fn every_multi_key_script_of_the_authority_runs_on_a_cluster() {
    use login_bridge::authority::store::{
        AuthorityStore, LocalUser, ServiceKey, ServiceUser, StoredKey,
    };

    let set = ClusterSet::start().await;
    let pool = login_bridge::session::redis::connect(&set.url())
        .await
        .unwrap();
    // With the replicas confirming too (`WAIT` routed to the `{authority}` slot's primary).
    let store = AuthorityStore::redis(pool, 1);
    let key = |kid: &str, created_at: i64| StoredKey {
        kid: kid.into(),
        alg: "ES256".into(),
        sealed_private: vec![1, 2, 3],
        created_at,
        retired_at: None,
        publish_until: None,
    };
    assert!(store.create_first_key(&key("k1", 1)).await.unwrap());
    assert_eq!(store.rotate(&key("k2", 2), 10, 20).await.unwrap(), 1);
    assert_eq!(store.delete_spent_keys(30).await.unwrap(), 1);
    assert_eq!(store.signing_keys().await.unwrap().len(), 1);

    let user = ServiceUser {
        id: "svc-1".into(),
        name: "reports".into(),
        roles: vec!["reader".into()],
        groups: Vec::new(),
        permissions: Vec::new(),
        disabled: false,
        expires_at: None,
        created_at: 1,
    };
    let service_key = |key_id: &str| ServiceKey {
        key_id: key_id.into(),
        user_id: "svc-1".into(),
        alg: "ES256".into(),
        public_pem: "pem".into(),
        created_at: 1,
    };
    store
        .create_service_user(&user, &service_key("sk1"))
        .await
        .unwrap();
    store.add_service_key(&service_key("sk2")).await.unwrap();
    assert!(store.remove_service_key("svc-1", "sk2").await.unwrap());
    assert!(
        store
            .first_use("svc-1", "sk1", "j1", 100, 50)
            .await
            .unwrap()
    );
    assert!(
        !store
            .first_use("svc-1", "sk1", "j1", 100, 50)
            .await
            .unwrap()
    );
    assert!(store.set_disabled("svc-1", true).await.unwrap());
    assert!(
        !store
            .first_use("svc-1", "sk1", "j2", 100, 50)
            .await
            .unwrap()
    );

    let local = LocalUser {
        id: "local-1".into(),
        name: "admin".into(),
        display_name: None,
        email: None,
        roles: Vec::new(),
        groups: Vec::new(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        disabled: false,
        created_at: 1,
        password_changed_at: 1,
    };
    assert!(store.insert_local_user(&local).await.unwrap());
    assert!(store.update_local_user(&local).await.unwrap());
    assert_eq!(store.local_users().await.unwrap().len(), 1);
}
