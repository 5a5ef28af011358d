use reqwest::Method;

use crate::support::{Server, error_code, json_of};

#[test]
fn requests_from_outside_the_allowlist_are_refused_even_with_a_valid_token() {
    // Loopback is not in the list, so this server refuses everything we send.
    let server = Server::start(&[("CRAFTING_LAN_CIDRS", "10.0.0.0/8")]);
    let cases = [
        ("/healthz", None),
        ("/projects", Some(server.admin.as_str())),
        ("/admin/tokens", Some(server.admin.as_str())),
        ("/no/such/route", None),
    ];
    for (path, bearer) in cases {
        let (status, body) = json_of(server.request(Method::GET, path, bearer).send().unwrap());
        assert_eq!(error_code(status, &body, 403), "forbidden_network", "{path}");
        assert!(body["error"].as_str().unwrap().contains("127.0.0.1"), "{body}");
    }
    // Claiming to come from an allowed address changes nothing: the peer is
    // not a trusted proxy.
    let res = server
        .request(Method::GET, "/projects", Some(&server.admin))
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .unwrap();
    let (status, body) = json_of(res);
    assert_eq!(error_code(status, &body, 403), "forbidden_network");
}

#[test]
fn token_networks_count_forwarded_addresses_only_from_trusted_proxies() {
    // Without trusted proxies, X-Forwarded-For is ignored.
    let server = Server::start(&[]);
    let lan_only = server.mint("lan-only", false, &["10.1.0.0/16"]);
    let anywhere = server.mint("anywhere", false, &[]);
    let get = |bearer: &str, xff: Option<&str>| {
        let mut req = server.request(Method::GET, "/projects", Some(bearer));
        if let Some(x) = xff {
            req = req.header("x-forwarded-for", x);
        }
        json_of(req.send().unwrap())
    };
    let (status, body) = get(&lan_only, None);
    assert_eq!(error_code(status, &body, 403), "forbidden_network");
    let (status, body) = get(&lan_only, Some("10.1.2.3"));
    assert_eq!(error_code(status, &body, 403), "forbidden_network", "spoofed header believed");
    assert_eq!(get(&anywhere, Some("10.1.2.3")).0, 200);
    drop(server);

    // Behind a trusted proxy (here: loopback), the forwarded address counts.
    let server = Server::start(&[("CRAFTING_TRUSTED_PROXIES", "127.0.0.1/32")]);
    let lan_only = server.mint("lan-only", false, &["10.1.0.0/16"]);
    let get = |xff: Option<&str>| {
        let mut req = server.request(Method::GET, "/projects", Some(&lan_only));
        if let Some(x) = xff {
            req = req.header("x-forwarded-for", x);
        }
        json_of(req.send().unwrap())
    };
    let (status, body) = get(Some("10.1.2.3"));
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(None);
    assert_eq!(error_code(status, &body, 403), "forbidden_network");
    let (status, body) = get(Some("10.2.0.1"));
    assert_eq!(error_code(status, &body, 403), "forbidden_network");
    // Only the entry the proxy appended counts, not what the client wrote before it.
    let (status, body) = get(Some("10.1.2.3, 10.2.0.1"));
    assert_eq!(error_code(status, &body, 403), "forbidden_network");
    // A forwarded address outside the global allowlist is refused before any token check.
    let (status, body) = get(Some("203.0.113.9"));
    assert_eq!(error_code(status, &body, 403), "forbidden_network");
    // An entry the walk cannot read never makes the proxy itself the client:
    // the request is refused, /healthz included.
    for bad in ["garbage, 8.8.8.8,", "8.8.8.8,", "not-an-address"] {
        let (status, body) = get(Some(bad));
        assert_eq!(error_code(status, &body, 403), "bad_forwarded_for", "{bad:?}");
        let res = server
            .request(Method::GET, "/healthz", None)
            .header("x-forwarded-for", bad)
            .send()
            .unwrap();
        assert_eq!(res.status().as_u16(), 403, "{bad:?}");
    }
    // Two header lines form one list in order: the last entry is the proxy's.
    let res = server
        .request(Method::GET, "/healthz", None)
        .header("x-forwarded-for", "10.1.1.1")
        .header("x-forwarded-for", "8.8.8.8")
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 403, "8.8.8.8 is outside the allowlist");
    assert!(body["error"].as_str().unwrap().contains("CRAFTING_LAN_CIDRS"), "{body}");
}
