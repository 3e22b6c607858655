//! Which webhook URLs an enterprise may register.
//!
//! slotgate posts to whatever URL an enterprise is configured with, from
//! inside the operator's network. A URL naming loopback, a link-local
//! address (cloud metadata services live there) or a private range would
//! let whoever configures an enterprise make slotgate probe that network.
//! Such URLs are refused when the enterprise is configured, unless the
//! operator allows them (`crm.allow_private_webhook_urls`, for tests and
//! for CRMs on the same private network). Host names other than
//! `localhost` are not resolved here: what a name points to can change.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Why a webhook URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookUrlError {
    #[error("{0:?} is not a URL")]
    Unparsable(String),
    #[error("the scheme must be http or https, not {0:?}")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL must not carry credentials: use crm_webhook_secret to authenticate")]
    Credentials,
    #[error(
        "{0} is a loopback, link-local, private or unspecified address; \
         set crm.allow_private_webhook_urls to allow it"
    )]
    Private(String),
}

/// Parses and checks a webhook URL; `allow_private` lifts the address
/// restriction only.
pub fn check(text: &str, allow_private: bool) -> Result<Url, WebhookUrlError> {
    let url = Url::parse(text.trim()).map_err(|_| WebhookUrlError::Unparsable(text.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(WebhookUrlError::Scheme(url.scheme().to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(WebhookUrlError::Credentials);
    }
    let host = url.host().ok_or(WebhookUrlError::NoHost)?;
    if !allow_private {
        let private = match &host {
            Host::Ipv4(ip) => is_private_v4(*ip),
            Host::Ipv6(ip) => is_private_v6(*ip),
            Host::Domain(name) => is_local_name(name),
        };
        if private {
            return Err(WebhookUrlError::Private(host.to_string()));
        }
    }
    Ok(url)
}

/// Whether `ip` is an address slotgate must not post to by default.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6),
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        // "This network" (0/8) and carrier-grade NAT (100.64/10).
        || a == 0
        || (a == 100 && (64..128).contains(&b))
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_private_v4(v4);
    }
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        // Unique local fc00::/7 and link-local fe80::/10.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_judged_by_their_host() {
        let cases: &[(&str, bool)] = &[
            ("https://crm.example.com/hooks", true),
            ("http://crm.example.com:8443/h?x=1", true),
            ("https://93.184.216.34/h", true),
            ("https://[2001:db8::1]/h", true),
            ("http://127.0.0.1:8080/h", false),
            ("http://127.9.9.9/h", false),
            ("http://[::1]/h", false),
            ("http://localhost/h", false),
            ("http://LOCALHOST./h", false),
            ("http://api.localhost/h", false),
            ("http://10.1.2.3/h", false),
            ("http://172.16.0.1/h", false),
            ("http://172.31.255.255/h", false),
            ("http://192.168.1.1/h", false),
            ("http://169.254.169.254/latest/meta-data", false),
            ("http://0.0.0.0/h", false),
            ("http://[::]/h", false),
            ("http://100.64.0.1/h", false),
            ("http://[fd00::1]/h", false),
            ("http://[fc00::1]/h", false),
            ("http://[fe80::1]/h", false),
            ("http://[::ffff:10.0.0.1]/h", false),
            ("http://[::ffff:93.184.216.34]/h", true),
            // Numeric forms a browser would read as 127.0.0.1.
            ("http://2130706433/h", false),
            ("http://0x7f.1/h", false),
            ("http://172.32.0.1/h", true),
        ];
        for (url, ok) in cases {
            let got = check(url, false);
            assert_eq!(got.is_ok(), *ok, "{url}: {got:?}");
            if !ok {
                assert!(
                    matches!(got, Err(WebhookUrlError::Private(_))),
                    "{url}: {got:?}"
                );
            }
        }
    }

    #[test]
    fn the_flag_allows_private_hosts_only() {
        assert!(check("http://127.0.0.1:9/h", true).is_ok());
        assert!(check("http://localhost/h", true).is_ok());
        assert_eq!(
            check("ftp://127.0.0.1/h", true),
            Err(WebhookUrlError::Scheme("ftp".into()))
        );
        assert_eq!(
            check("https://user:pw@crm.example.com/", true),
            Err(WebhookUrlError::Credentials)
        );
        assert!(matches!(
            check("not a url", true),
            Err(WebhookUrlError::Unparsable(_))
        ));
        assert!(matches!(
            check("file:///etc/passwd", true),
            Err(WebhookUrlError::Scheme(_))
        ));
    }
}
