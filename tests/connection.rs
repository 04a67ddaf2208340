//! The held connection (src/redis/connection.rs on src/redis/resp.rs) against a real
//! redis-server: a reply that comes after its command timed out is dropped, not taken for the
//! next command's; pipelined commands abandoned by a cancelled caller do not leak into the next
//! exchange; a connection closed by the server is noticed and says so; large replies arrive
//! whole; a Unix socket and a database number work like TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Redis;
use redis_clients_exporter::config::Target;
use redis_clients_exporter::redis::connection::{Conn, ErrorKind, Stage};
use redis_clients_exporter::redis::resp::{Arg, Value};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn target(r: &Redis, timeout: Duration) -> Target {
    let mut t = r.target("conn");
    t.command_timeout = timeout;
    t
}

async fn id(c: &mut Conn) -> i64 {
    match c.command(Stage::ClientId, &["CLIENT", "ID"]).await {
        Ok(Value::Integer(i)) => i,
        other => panic!("CLIENT ID answered {other:?}"),
    }
}

#[test]
fn a_reply_after_its_timeout_is_dropped_and_the_connection_kept() {
    let r = Redis::start(&[]);
    runtime().block_on(async {
        let mut c = Conn::open(&target(&r, Duration::from_millis(400)))
            .await
            .unwrap();
        let own = id(&mut c).await;
        // BLPOP answers (nil) after 1.5 s: long after this command's timeout (0.4 s).
        let e = c
            .command(Stage::Ping, &["BLPOP", "no-such-list", "1.5"])
            .await
            .expect_err("timed out");
        assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
        assert!(!c.broken());
        // Too early: the late nil is not here yet, and this command's reply is behind it.
        let e = c.command(Stage::Ping, &["PING"]).await.expect_err("early");
        assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
        // Now both late replies (nil, PONG) are dropped and CLIENT ID gets its own, on the
        // same connection.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(id(&mut c).await, own);
        assert_eq!(
            c.command(Stage::Ping, &["ECHO", "x"]).await.unwrap(),
            Value::String("x".into())
        );
    });
}

#[test]
fn pipelined_replies_nobody_reads_do_not_leak_into_the_next_exchange() {
    let r = Redis::start(&[]);
    runtime().block_on(async {
        let mut c = Conn::open(&target(&r, Duration::from_secs(5)))
            .await
            .unwrap();
        // Sent, never read (a relief job cancelled between its commands).
        for v in ["a", "b", "c"] {
            c.send(Stage::Ping, [Arg::Str("ECHO"), Arg::Str(v)])
                .await
                .unwrap();
        }
        assert_eq!(
            c.command(Stage::Ping, &["ECHO", "mine"]).await.unwrap(),
            Value::String("mine".into())
        );
        // Pipelined and read: in order.
        c.settle();
        for i in [3u64, 1, 2] {
            c.send(Stage::Ping, [Arg::Str("ECHO"), Arg::Int(i)])
                .await
                .unwrap();
        }
        for want in ["3", "1", "2"] {
            assert_eq!(
                c.recv(Stage::Ping).await.unwrap(),
                Value::String(want.into())
            );
        }
        // An error reply is an error, and the connection goes on.
        let e = c
            .command(Stage::Ping, &["NOSUCHCOMMAND"])
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Other);
        assert!(e.message.contains("unknown command"), "{e}");
        assert!(!c.broken());
        assert_eq!(
            c.command(Stage::Ping, &["PING"]).await.unwrap(),
            Value::String("PONG".into())
        );
    });
}

#[test]
fn a_connection_killed_by_the_server_is_broken_and_says_so() {
    let r = Redis::start(&[]);
    runtime().block_on(async {
        let mut c = Conn::open(&target(&r, Duration::from_secs(30)))
            .await
            .unwrap();
        let own = id(&mut c).await;
        let mut admin = r.conn();
        admin.cmd(&["CLIENT", "KILL", "ID", &own.to_string()]);
        // Noticed at once (not after the 30 s timeout), as a connect error.
        let e = c.command(Stage::Info, &["INFO"]).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Connect, "{e}");
        assert!(c.broken());
        let e = c.command(Stage::Info, &["INFO"]).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Connect, "{e}");
    });
}

#[test]
fn large_replies_arrive_whole_over_tcp_and_unix_sockets_and_the_database_is_selected() {
    let r = Redis::start(&[]);
    let mut admin = r.conn();
    // A CLIENT LIST of 3 MB (a client named with 3 MB, which CLIENT SETNAME accepts): more than
    // any read buffer, read straight into its allocation.
    let big: String = (0..3_000_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let _named = r.conn().named(&big);
    admin.cmd(&["SELECT", "3"]);
    admin.cmd(&["SET", "small", "in-db-3"]);
    runtime().block_on(async {
        let mut tcp = target(&r, Duration::from_secs(10));
        tcp.db = Some(3);
        let mut unix = tcp.clone();
        unix.endpoint = redis_clients_exporter::config::Endpoint::Unix(r.socket_path());
        for t in [tcp, unix] {
            let mut c = Conn::open(&t).await.unwrap();
            for _ in 0..2 {
                let v = c
                    .command(Stage::ClientList, &["CLIENT", "LIST"])
                    .await
                    .unwrap();
                let list = std::str::from_utf8(v.as_bytes().unwrap()).unwrap();
                assert!(list.len() > big.len());
                assert!(list.contains(&format!(" name={big} ")));
            }
            let v = c.command(Stage::Info, &["GET", "small"]).await.unwrap();
            assert_eq!(v, Value::String("in-db-3".into()));
            // Our name, set at connect.
            match c
                .command(Stage::Info, &["CLIENT", "GETNAME"])
                .await
                .unwrap()
            {
                Value::String(n) => assert_eq!(n, "redis-clients-exporter"),
                other => panic!("{other:?}"),
            }
            c.close().await;
        }
    });
}
