//! Command signing (stub; replaced by the command branch).
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub id: String,
}
impl TrustedKey {
    pub fn parse(id: &str, b64: &str) -> Result<TrustedKey, String> {
        if b64.is_empty() {
            return Err("empty".into());
        }
        Ok(TrustedKey { id: id.into() })
    }
}
