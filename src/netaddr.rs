//! Network addresses as Go writes them.

/// Joins a host and a port as Go's `net.JoinHostPort` (brackets around IPv6).
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Whether `host` is an IP address (v4 or v6) or a DNS name (RFC 1123 labels): what a machine's
/// address may be, so that nothing else reaches a shell (`env`), a URL or an ssh command line.
pub fn is_host(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Whether `url` holds only characters a URL may have (RFC 3986), none that a shell or a quoted
/// string would take specially (quotes, `$`, backquotes, spaces, backslashes, control characters).
pub fn is_url_text(url: &str) -> bool {
    !url.is_empty()
        && url
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || (b"-._~:/?#[]@!&()*+,;=%".contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_urls_are_checked() {
        for ok in [
            "192.0.2.1",
            "::1",
            "fe80::1",
            "web",
            "web-1.example.com",
            "a.b.",
            "xn--bcher-kva.example",
        ] {
            assert!(is_host(ok), "{ok}");
        }
        for bad in [
            "",
            "1.2.3.4$(id)",
            "-oProxyCommand=x",
            "a b",
            "a..b",
            "a_b",
            "web-",
            "`x`",
            "a\nb",
        ] {
            assert!(!is_host(bad), "{bad:?}");
        }
        for ok in [
            "tcp://192.0.2.1:2376",
            "localhost",
            "tcp://[::1]:2376",
            "unix:///var/run/docker.sock",
        ] {
            assert!(is_url_text(ok), "{ok}");
        }
        for bad in [
            "",
            "tcp://1.2.3.4:2376$(id)",
            "tcp://a b",
            "tcp://x\"y",
            "tcp://x`y`",
            "tcp://x'y",
            "a\\b",
        ] {
            assert!(!is_url_text(bad), "{bad:?}");
        }
    }

    #[test]
    fn hosts_and_ports_join_like_go() {
        assert_eq!(join_host_port("192.0.2.1", 2376), "192.0.2.1:2376");
        assert_eq!(join_host_port("::1", 2376), "[::1]:2376");
        assert_eq!(join_host_port("web.example", 22), "web.example:22");
    }
}
