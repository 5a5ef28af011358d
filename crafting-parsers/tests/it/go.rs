//! go vet and govulncheck.

use crate::common::{check, ctx};

#[test]
fn go_vet_json_behind_package_lines() {
    let findings = check(
        "go-vet/json.log",
        &ctx("go", "/tmp/gofix/mod", "."),
        "
        lint warn go-vet copylocks @ cmd/myapp/main.go:8:12 | use passes lock by value: sync.Mutex
        lint warn go-vet copylocks @ cmd/myapp/main.go:8:38 | call of fmt.Println copies lock value: sync.Mutex
        lint warn go-vet copylocks @ cmd/myapp/main.go:12:6 | call of use copies lock value: sync.Mutex
        lint warn go-vet printf @ cmd/myapp/main.go:13:2 | fmt.Printf format %s reads arg #1, but call has 0 args
        lint warn go-vet assign @ pkg/util/util.go:9:2 | self-assignment of x to x
        lint warn go-vet printf @ pkg/util/util.go:7:2 | fmt.Printf format %d has arg name of wrong type string
        ",
    );
    assert_eq!(
        findings[0].raw_json.as_ref().expect("raw")["posn"],
        "/tmp/gofix/mod/cmd/myapp/main.go:8:12"
    );
}

#[test]
fn go_vet_suggested_fixes_and_analysis_errors() {
    let log = r#"# example.com/m
{
	"example.com/m": {
		"stringintconv": [
			{
				"posn": "/r/m/a.go:5:14",
				"message": "conversion from int to string yields a string of one rune",
				"suggested_fixes": [
					{
						"message": "Did you mean to convert a rune to a string?",
						"edits": [{"filename": "/r/m/a.go", "start": 40, "end": 46, "new": "string(rune"}]
					}
				]
			}
		],
		"unusedresult": {"error": "analysis skipped due to errors in package"}
	}
}
"#;
    let findings = crate::common::parse(&ctx("go", "/r", "m"), log.as_bytes());
    crate::common::check_findings(
        &findings,
        "lint warn go-vet stringintconv @ m/a.go:5:14 | conversion from int to string yields a string of one rune",
    );
    assert_eq!(
        findings[0].suggested_fix.as_deref(),
        Some(
            "Did you mean to convert a rune to a string?: replace bytes 40..46 of m/a.go with `string(rune`"
        )
    );
}

#[test]
fn govulncheck_called_code_is_an_error_the_rest_informational() {
    // Hand-written from govulncheck's streaming JSON layout (its database is online).
    let findings = check(
        "govulncheck/stream.log",
        &ctx("go", "/r", "svc"),
        "
        cve error govulncheck GO-2023-1571 @ svc/go.mod:-:- | Denial of service via crafted HTTP/2 stream in net/http and golang.org/x/net
        cve info govulncheck GO-2024-2687 @ svc/go.mod:-:- | HTTP/2 CONTINUATION flood in net/http
        cve info govulncheck GO-2022-0969 @ svc/go.mod:-:- | Denial of service in net/http and golang.org/x/net/http2
        ",
    );
    assert_eq!(findings[0].suggested_fix.as_deref(), Some("bump golang.org/x/net to v0.7.0"));
    assert_eq!(findings[1].suggested_fix.as_deref(), Some("bump go to 1.21.9"));
    assert!(findings[0].message.ends_with("called from main (cmd/server/main.go:18:7)"));
    let raw = findings[0].raw_json.as_ref().expect("raw");
    assert_eq!(raw["aliases"][0], "CVE-2022-41723");
    assert_eq!(raw["traces"][0][0], "*Server.ServeConn (http2/server.go:441:19)");
}
