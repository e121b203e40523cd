//! Dockerfile parser, .dockerignore, build planner and cache keys; steps run through a trait the engine implements.
//!
//! Pipeline: [`parse`] text → [`Dockerfile`] (typed, unexpanded instructions) →
//! [`BuildPlan::new`] (stages, `--target` pruning, parallel levels) →
//! [`BuildPlan::stage_steps`] (expanded [`Step`]s with the image config and history each
//! produces) → [`cache::step_key`] per step. [`dockerignore`] filters the context and
//! [`copy`] turns COPY sources into concrete copies.
#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod copy;
pub mod dockerignore;
pub mod driver;
pub mod instruction;
pub mod lex;
pub mod lint;
pub mod parser;
pub mod plan;
mod step;

pub use config::{Healthcheck, History, ImageConfig};
pub use instruction::{CommandLine, HealthcheckArgs, Instruction, Kind};
pub use lex::{Expanded, LexError, Lexer};
pub use parser::{Directives, Dockerfile, Flag, Heredoc, ParseError, ParseErrorKind, parse};
pub use plan::{
    Base, BuildOptions, BuildPlan, CopyOp, Mount, Op, PlanError, Platform, Source, Stage,
    StagePlan, Step,
};
