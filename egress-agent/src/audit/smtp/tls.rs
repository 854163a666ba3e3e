//! rustls client configurations: one that verifies (`ca_file` or the system roots) and one
//! that does not, used only to carry on probing a server whose certificate failed (the
//! failure is already reported) and for the relay checks, which judge relaying, not TLS.

use std::sync::Arc;

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, ring},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject as _},
};

#[derive(Clone)]
pub struct TlsConfigs {
    pub verifying: Arc<ClientConfig>,
    pub unverified: Arc<ClientConfig>,
}

impl TlsConfigs {
    pub fn new(ca_file: Option<&str>) -> Result<TlsConfigs, String> {
        let provider = Arc::new(ring::default_provider());
        let mut roots = RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|err| format!("mail.ca_file {path}: {err}"))?;
                for cert in certs {
                    let cert = cert.map_err(|err| format!("mail.ca_file {path}: {err}"))?;
                    roots
                        .add(cert)
                        .map_err(|err| format!("mail.ca_file {path}: {err}"))?;
                }
                if roots.is_empty() {
                    return Err(format!("mail.ca_file {path}: no certificate in it"));
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    return Err("no system trust anchors found (set mail.ca_file)".into());
                }
            }
        }
        let builder = || {
            ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|err| format!("TLS set-up: {err}"))
        };
        let verifying = builder()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let unverified = builder()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider.clone())))
            .with_no_client_auth();
        Ok(TlsConfigs {
            verifying: Arc::new(verifying),
            unverified: Arc::new(unverified),
        })
    }
}

/// Accepts any certificate but still checks the handshake's signatures.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
