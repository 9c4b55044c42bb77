//! The `rman target /` stand-in: parser, session, channels, backup, restore.

pub mod archlog;
pub mod args;
pub mod ast;
pub mod autobackup;
pub mod backup;
pub mod backupset;
pub mod blockrecover;
pub mod catalog;
pub mod catalog_files;
pub mod change;
pub mod channel;
pub mod config;
pub mod datetime;
pub mod faults;
pub mod incarnation;
pub mod instance;
pub mod job;
pub mod lexer;
pub mod maint;
pub mod newname;
pub mod output;
pub mod parser;
pub mod producer;
pub mod restore;
pub mod restore_part;
pub mod session;
pub mod sql_extra;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use channel::SbtContext;
use faults::Faults;
use output::Out;
use session::Session;

/// Entry point when the binary runs as `rman`.
pub fn main(args: &[String]) -> ExitCode {
    if args.first().map(String::as_str) == Some(crate::sbt::server::CHANNEL_SERVER_ARG) {
        return crate::sbt::server::run();
    }
    let args = match args::parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            let out = Out::stdout();
            banner(&out);
            out.stack(&e.rman_lines());
            return ExitCode::FAILURE;
        }
    };
    let out = match &args.log {
        Some(l) => match Out::log_file(std::path::Path::new(l), args.append) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("RMAN-04005: error from target database: cannot open log file {l}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Out::stdout(),
    };
    banner(&out);
    let (source_name, script) = match &args.cmdfile {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(s) => (f.clone(), s),
            Err(e) => {
                out.stack(&[
                    "RMAN-01005: error opening file for command input".to_string(),
                    format!("RMAN-01005: {f}: {e}"),
                ]);
                out.blank();
                out.line("Recovery Manager complete.");
                return ExitCode::FAILURE;
            }
        },
        None => {
            let mut s = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                out.stack(&[format!("RMAN-01005: error reading standard input: {e}")]);
                return ExitCode::FAILURE;
            }
            ("standard input".to_string(), s)
        }
    };
    let script = args::substitute(&script, &args.using, |n| {
        print!("Enter value for {n}: ");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        line.trim_end_matches(['\n', '\r']).to_string()
    });
    let failed = run_script(&args, &out, &source_name, &script);
    out.blank();
    out.line("Recovery Manager complete.");
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn banner(out: &Out) {
    let now = session::now();
    out.blank();
    out.line(format!(
        "Recovery Manager: Release 19.0.0.0.0 - Production on {}",
        now.format("%a %b %-d %H:%M:%S %Y")
    ));
    out.line("Version 19.3.0.0.0");
    out.blank();
    out.line("Copyright (c) 1982, 2019, Oracle and/or its affiliates.  All rights reserved.");
    out.blank();
}

/// Connects, echoes the script as RMAN does, runs it; returns whether anything failed.
fn run_script(args: &args::Args, out: &Out, source_name: &str, script: &str) -> bool {
    let db = match args.target.as_deref() {
        Some(_) => match crate::db::Database::connect_env() {
            Ok(db) => db,
            Err(e) => {
                out.stack(&[
                    "RMAN-00554: initialization of internal recovery manager package failed".into(),
                    "RMAN-04005: error from target database: ".to_string() + &e.to_string(),
                ]);
                return true;
            }
        },
        None => {
            out.stack(&["RMAN-06171: not connected to target database".into()]);
            return true;
        }
    };
    match instance::connect_line(&db) {
        Ok(l) => out.line(l),
        Err(e) => {
            out.stack(&session::db_lines(&e));
            return true;
        }
    }
    out.blank();
    let mut n = 0;
    for line in script.lines() {
        n += 1;
        if n == 1 {
            out.line(format!("RMAN> {line}"));
        } else {
            out.line(format!("{n}> {line}"));
        }
    }
    out.line(format!("{}> ", n + 1));
    let stmts = match parser::parse(script) {
        Ok(s) => s,
        Err(e) => {
            let mut lines =
                vec!["RMAN-00558: error encountered while parsing input commands".to_string()];
            lines.extend(e.rman_lines(source_name));
            out.stack(&lines);
            return true;
        }
    };
    if args.checksyntax {
        out.line("The cmdfile has no syntax errors");
        return false;
    }
    let faults = match Faults::from_env() {
        Ok(f) => Arc::new(f),
        Err(e) => {
            out.stack(&[format!("RMAN-00554: bad fault switch: {e}")]);
            return true;
        }
    };
    let home = db.home().to_path_buf();
    let sbt_ctx = SbtContext {
        exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("rman")),
        default_library: home.join("lib").join("libobk.so"),
        trace_name: home.join("trace").join("sbtio.log").display().to_string(),
    };
    let mut session = match Session::new(db, out.clone(), faults, sbt_ctx, args.msgno) {
        Ok(s) => s,
        Err(e) => {
            out.stack(&session::db_lines(&e));
            return true;
        }
    };
    let mut failed = false;
    for stmt in &stmts {
        if let Err(e) = session.execute(stmt) {
            failed = true;
            out.stack(&e.lines);
            if args.cmdfile.is_some() {
                break;
            }
        }
    }
    session.finish(failed);
    failed
}
