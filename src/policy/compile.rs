//! (to be written)
use super::Policy;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CompileError(pub String);

pub fn compile(_source: &str, _file: &str) -> Result<Policy, CompileError> {
    Err(CompileError("not yet".into()))
}

pub fn compile_file(path: &std::path::Path) -> Result<Policy, CompileError> {
    let text = std::fs::read_to_string(path).map_err(|e| CompileError(e.to_string()))?;
    compile(&text, &path.display().to_string())
}
