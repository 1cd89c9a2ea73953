//! Output formats shared by the commands: Go templates, Go's tabwriter, natural sort.

pub mod natsort;
pub mod tabwriter;
pub mod template;
