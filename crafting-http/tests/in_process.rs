//! The app mounted in-process on a real engine, for what a loopback socket
//! cannot show: peers with other addresses (IPv4-mapped IPv6, IPv6 loopback,
//! foreign networks) and requests without a peer address.

use std::net::SocketAddr;

use actix_web::test::{self, TestRequest};
use crafting_core::{Config, CraftingTable};
use crafting_http::{HttpConfig, app};
use serde_json::Value;

async fn engine(dir: &tempfile::TempDir) -> (CraftingTable, String) {
    let table = CraftingTable::start(Config::new(dir.path())).await.expect("engine starts");
    let file = table.admin_bearer_file().expect("first start writes the admin bearer").clone();
    let bearer = std::fs::read_to_string(file).expect("bearer file").trim().to_owned();
    (table, bearer)
}

fn peer(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

#[actix_web::test]
async fn peers_are_judged_by_their_ipv4_form_and_the_allowlist() {
    let dir = tempfile::tempdir().unwrap();
    let (table, admin) = engine(&dir).await;
    let svc = test::init_service(app(table, HttpConfig::default())).await;

    let cases = [
        ("[::ffff:127.0.0.1]:4000", 200),
        ("[::ffff:192.168.7.9]:4000", 200),
        ("[::1]:4000", 200),
        ("10.20.30.40:4000", 200),
        ("[::ffff:8.8.8.8]:4000", 403),
        ("[2001:db8::1]:4000", 403),
        ("100.64.0.1:4000", 403),
    ];
    for (addr, want) in cases {
        let req = TestRequest::get()
            .uri("/projects")
            .peer_addr(peer(addr))
            .insert_header(("authorization", format!("Bearer {admin}")))
            .to_request();
        let res = test::call_service(&svc, req).await;
        assert_eq!(res.status().as_u16(), want, "peer {addr}");
        let body: Value = test::read_body_json(res).await;
        assert_eq!(body["ok"], Value::Bool(want == 200), "{body}");
    }

    // A request with no peer address at all is never allowed.
    let req = TestRequest::get().uri("/healthz").to_request();
    let res = test::call_service(&svc, req).await;
    assert_eq!(res.status().as_u16(), 403);
}

#[actix_web::test]
async fn a_trusted_proxy_in_ipv4_mapped_form_still_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (table, admin) = engine(&dir).await;
    let config = HttpConfig {
        lan_cidrs: crafting_http::net::parse_cidr_list("192.168.0.0/16").unwrap(),
        trusted_proxies: crafting_http::net::parse_cidr_list("127.0.0.1/32").unwrap(),
        ..HttpConfig::default()
    };
    let svc = test::init_service(app(table, config)).await;
    let get = |xff: Option<&'static str>| {
        let mut req = TestRequest::get()
            .uri("/projects")
            .peer_addr(peer("[::ffff:127.0.0.1]:4000"))
            .insert_header(("authorization", format!("Bearer {admin}")));
        if let Some(x) = xff {
            req = req.insert_header(("x-forwarded-for", x));
        }
        req.to_request()
    };
    assert_eq!(test::call_service(&svc, get(None)).await.status().as_u16(), 403);
    assert_eq!(test::call_service(&svc, get(Some("192.168.1.2"))).await.status().as_u16(), 200);
    assert_eq!(
        test::call_service(&svc, get(Some("::ffff:192.168.1.2"))).await.status().as_u16(),
        200
    );
    assert_eq!(test::call_service(&svc, get(Some("10.0.0.1"))).await.status().as_u16(), 403);
}
