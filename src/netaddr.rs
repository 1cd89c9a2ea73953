//! Network addresses as Go writes them.

/// Joins a host and a port as Go's `net.JoinHostPort` (brackets around IPv6).
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports_join_like_go() {
        assert_eq!(join_host_port("192.0.2.1", 2376), "192.0.2.1:2376");
        assert_eq!(join_host_port("::1", 2376), "[::1]:2376");
        assert_eq!(join_host_port("web.example", 22), "web.example:22");
    }
}
