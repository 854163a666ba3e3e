//! The stable names of the checks (scripts and alerts depend on them), in the spec's order.

pub const MX_PRESENT: &str = "dns.mx_present";
pub const MX_NOT_CNAME: &str = "dns.mx_not_cname";
pub const MX_RESOLVES: &str = "dns.mx_resolves";
pub const PRIMARY_MX_PREFERRED: &str = "dns.primary_mx_preferred";
pub const MX_HOST_HAS_MX: &str = "dns.mx_host_has_mx";
pub const RELAY_PTR: &str = "dns.relay_ptr";
pub const RELAY_FCRDNS: &str = "dns.relay_fcrdns";
pub const SPF_AUTHORISES_RELAY: &str = "dns.spf_authorises_relay";
pub const SPF_WITHIN_LIMITS: &str = "dns.spf_within_limits";
pub const RELAY_BANNER_MATCHES_PTR: &str = "smtp.relay_banner_matches_ptr";
pub const RELAY_NOT_OPEN: &str = "smtp.relay_not_open";
pub const SUBMISSION_STARTTLS: &str = "smtp.submission_starttls";
pub const SUBMISSION_AUTH_AFTER_TLS_ONLY: &str = "smtp.submission_auth_after_tls_only";
pub const SUBMISSION_IMPLICIT_TLS: &str = "smtp.submission_implicit_tls";
pub const SUBMISSION_REQUIRES_AUTH: &str = "smtp.submission_requires_auth";
pub const SUBMISSION_REJECTS_FORGED_FROM: &str = "smtp.submission_rejects_forged_from";
pub const PRIMARY_MX_PROTECTED: &str = "guard.primary_mx_protected";
pub const SPAM_CHECKERS_ALLOWED: &str = "guard.spam_checkers_allowed";
pub const SUBMISSION_RELAYS_ALLOWLISTED: &str = "guard.submission_relays_allowlisted";

/// Every check, in the order the report lists them.
pub const ALL: [&str; 19] = [
    MX_PRESENT,
    MX_NOT_CNAME,
    MX_RESOLVES,
    PRIMARY_MX_PREFERRED,
    MX_HOST_HAS_MX,
    RELAY_PTR,
    RELAY_FCRDNS,
    SPF_AUTHORISES_RELAY,
    SPF_WITHIN_LIMITS,
    RELAY_BANNER_MATCHES_PTR,
    RELAY_NOT_OPEN,
    SUBMISSION_STARTTLS,
    SUBMISSION_AUTH_AFTER_TLS_ONLY,
    SUBMISSION_IMPLICIT_TLS,
    SUBMISSION_REQUIRES_AUTH,
    SUBMISSION_REJECTS_FORGED_FROM,
    PRIMARY_MX_PROTECTED,
    SPAM_CHECKERS_ALLOWED,
    SUBMISSION_RELAYS_ALLOWLISTED,
];
