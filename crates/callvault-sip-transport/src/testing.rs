//! Certificates made at test time (`--features testing`): a CA, and certificates it signs for
//! servers and clients, as PEM, the shape an operator's files have.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate and its key, as PEM (what `cert_file` and `key_file` hold).
#[derive(Clone, Debug)]
pub struct TestCertificate {
    pub certificate_pem: String,
    pub key_pem: String,
    /// The certificate in DER, to compare with what a peer presented.
    pub der: Vec<u8>,
}

/// A certificate authority for tests.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    /// A new CA (self-signed, may sign certificates) with `name` as its common name.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .expect("no subject alternative names cannot be invalid");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("ring generates a P-256 key");
        let issuer =
            CertifiedIssuer::self_signed(params, key).expect("a CA certificate can be signed");
        TestCa { issuer }
    }

    /// The CA certificate as PEM (what `client_ca_file` holds).
    pub fn certificate_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate signed by this CA for `subject_alt_names` (IP addresses or DNS names),
    /// good for both server and client authentication, as SBC certificates usually are.
    pub fn issue(&self, common_name: &str, subject_alt_names: &[&str]) -> TestCertificate {
        let sans: Vec<String> = subject_alt_names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans).expect("test names are valid");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("ring generates a P-256 key");
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("the CA signs the certificate");
        TestCertificate {
            certificate_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            der: certificate.der().to_vec(),
        }
    }
}
