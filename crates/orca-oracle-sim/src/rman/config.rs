//! RMAN's persistent configuration (CONFIGURE), stored in V$RMAN_CONFIGURATION as Oracle
//! stores it (NAME + VALUE text) and read back through the command parser.

use std::collections::BTreeMap;

use super::ast::*;
use super::parser::parse;

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub retention: RetentionPolicy,
    pub default_device: DeviceType,
    pub parallelism: BTreeMap<DeviceType, u32>,
    pub backup_type: BTreeMap<DeviceType, String>,
    /// CONFIGURE CHANNEL [n] DEVICE TYPE x ...: key (device, number).
    pub channels: BTreeMap<(DeviceType, Option<u32>), ChannelOptions>,
    pub autobackup: bool,
    pub autobackup_format: BTreeMap<DeviceType, String>,
    pub other: Vec<(String, String)>,
    /// CONFIGURE EXCLUDE FOR TABLESPACE: skipped by BACKUP DATABASE.
    pub excluded: Vec<String>,
    /// Which settings are explicitly configured (for SHOW ALL's "# default").
    pub set: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            retention: RetentionPolicy::Redundancy(1),
            default_device: DeviceType::Disk,
            parallelism: BTreeMap::new(),
            backup_type: BTreeMap::new(),
            channels: BTreeMap::new(),
            autobackup: true,
            autobackup_format: BTreeMap::new(),
            other: Vec::new(),
            excluded: Vec::new(),
            set: Vec::new(),
        }
    }
}

/// How RMAN writes a device type in configuration text.
pub fn device_text(d: DeviceType) -> &'static str {
    match d {
        DeviceType::Disk => "DISK",
        DeviceType::Sbt => "'SBT_TAPE'",
    }
}

/// `2 G`, `100 M`, `512 K` or bytes, as RMAN shows sizes.
pub fn size_text(n: u64) -> String {
    for (unit, shift) in [("G", 30), ("M", 20), ("K", 10)] {
        if n >= (1 << shift) && n.is_multiple_of(1 << shift) {
            return format!("{} {unit}", n >> shift);
        }
    }
    n.to_string()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Text of channel options after `DEVICE TYPE x`.
pub fn channel_options_text(o: &ChannelOptions) -> String {
    let mut s = String::new();
    if let Some(p) = &o.parms {
        s.push_str(&format!(" PARMS  {}", quote(p)));
    }
    if !o.formats.is_empty() {
        let f: Vec<String> = o.formats.iter().map(|f| quote(f)).collect();
        s.push_str(&format!(" FORMAT   {}", f.join(", ")));
    }
    if let Some(m) = o.maxpiecesize {
        s.push_str(&format!(" MAXPIECESIZE {}", size_text(m)));
    }
    if let Some(m) = o.maxopenfiles {
        s.push_str(&format!(" MAXOPENFILES {m}"));
    }
    if let Some(r) = o.rate {
        s.push_str(&format!(" RATE {}", size_text(r)));
    }
    if let Some(c) = &o.connect {
        s.push_str(&format!(" CONNECT {}", quote(c)));
    }
    if let Some(t) = &o.send {
        s.push_str(&format!(" SEND {}", quote(t)));
    }
    s
}

/// V$RMAN_CONFIGURATION NAME and VALUE (None = CLEAR) of a CONFIGURE command.
pub fn name_value(c: &Configure) -> (String, Option<String>) {
    match c {
        Configure::Retention(p) => (
            "RETENTION POLICY".into(),
            p.as_ref().map(|p| format!("TO {}", retention_text(p))),
        ),
        Configure::Channel {
            number,
            device,
            opts,
        } => (
            "CHANNEL".into(),
            opts.as_ref().map(|o| {
                format!(
                    "{}DEVICE TYPE {}{}",
                    number.map(|n| format!("{n} ")).unwrap_or_default(),
                    device_text(*device),
                    channel_options_text(o)
                )
            }),
        ),
        Configure::Device { device, setting } => (
            "DEVICE TYPE".into(),
            setting.as_ref().map(|s| {
                format!(
                    "{} PARALLELISM {} BACKUP TYPE TO {}",
                    device_text(*device),
                    s.parallelism,
                    s.backup_type.as_deref().unwrap_or("BACKUPSET")
                )
            }),
        ),
        Configure::DefaultDevice(d) => (
            "DEFAULT DEVICE TYPE TO".into(),
            d.map(|d| device_text(d).to_string()),
        ),
        Configure::ControlfileAutobackup(v) => (
            "CONTROLFILE AUTOBACKUP".into(),
            v.map(|on| if on { "ON" } else { "OFF" }.to_string()),
        ),
        Configure::AutobackupFormat { device, format } => (
            "CONTROLFILE AUTOBACKUP FORMAT FOR DEVICE TYPE".into(),
            format
                .as_ref()
                .map(|f| format!("{} TO {}", device_text(*device), quote(f))),
        ),
        Configure::Other { name, value } => (name.clone(), value.clone()),
        Configure::Exclude { tablespace, clear } => (
            "EXCLUDE FOR TABLESPACE".into(),
            (!clear).then(|| tablespace.clone()),
        ),
    }
}

/// Whether a stored VALUE is the one a CONFIGURE replaces (same device, same channel number).
pub fn replaces(c: &Configure, stored_value: &str) -> bool {
    let stored = match parse_stored(&name_value(c).0, stored_value) {
        Some(s) => s,
        None => return true,
    };
    match (c, &stored) {
        (
            Configure::Channel { number, device, .. },
            Configure::Channel {
                number: n2,
                device: d2,
                ..
            },
        ) => number == n2 && device == d2,
        (Configure::Device { device, .. }, Configure::Device { device: d2, .. }) => device == d2,
        (Configure::Exclude { tablespace, .. }, Configure::Exclude { tablespace: t2, .. }) => {
            tablespace == t2
        }
        (
            Configure::AutobackupFormat { device, .. },
            Configure::AutobackupFormat { device: d2, .. },
        ) => device == d2,
        // BACKUP COPIES is set per device type.
        (
            Configure::Other { value: Some(v), .. },
            Configure::Other {
                value: Some(v2), ..
            },
        ) if copies_value(v).is_some() => {
            copies_value(v).map(|c| c.0) == copies_value(v2).map(|c| c.0)
        }
        _ => true,
    }
}

fn parse_stored(name: &str, value: &str) -> Option<Configure> {
    let stmts = parse(&format!("CONFIGURE {name} {value};")).ok()?;
    match stmts.into_iter().next()?.cmd {
        Command::Configure(c) => Some(c),
        _ => None,
    }
}

/// The device and count of a stored `<device> TO <n>` BACKUP COPIES value.
fn copies_value(value: &str) -> Option<(DeviceType, u32)> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let device = words
        .first()?
        .trim_matches(|c| c == '\'' || c == '"')
        .to_ascii_uppercase();
    let device = match device.as_str() {
        "DISK" => DeviceType::Disk,
        "SBT" | "SBT_TAPE" => DeviceType::Sbt,
        _ => return None,
    };
    let n = words.last()?.parse().ok()?;
    Some((device, n))
}

pub fn retention_text(p: &RetentionPolicy) -> String {
    match p {
        RetentionPolicy::RecoveryWindow(n) => format!("RECOVERY WINDOW OF {n} DAYS"),
        RetentionPolicy::Redundancy(n) => format!("REDUNDANCY {n}"),
        RetentionPolicy::None => "NONE".into(),
    }
}

impl Config {
    /// The zstd level of compressed backup sets for CONFIGURE COMPRESSION ALGORITHM: LOW is
    /// the fastest, HIGH the smallest, BASIC (the default) and MEDIUM in between, as Oracle
    /// orders them.
    pub fn compression_level(&self) -> i32 {
        let algorithm = self
            .other
            .iter()
            .find(|(n, _)| n == "COMPRESSION ALGORITHM")
            .map(|(_, v)| v.trim_start().trim_start_matches('\'').to_ascii_uppercase())
            .unwrap_or_default();
        if algorithm.starts_with("LOW") {
            1
        } else if algorithm.starts_with("MEDIUM") {
            2
        } else if algorithm.starts_with("HIGH") {
            15
        } else {
            crate::piece::BASIC_LEVEL
        }
    }

    /// CONFIGURE BACKUP OPTIMIZATION ON: BACKUP skips archived logs already backed up to the
    /// device type.
    pub fn backup_optimization(&self) -> bool {
        self.other
            .iter()
            .rev()
            .find(|(n, _)| n == "BACKUP OPTIMIZATION")
            .is_some_and(|(_, v)| v.trim().eq_ignore_ascii_case("ON"))
    }

    /// CONFIGURE ENCRYPTION FOR DATABASE ON: backups are encrypted with the wallet's key.
    pub fn encryption_for_database(&self) -> bool {
        self.other
            .iter()
            .rev()
            .find(|(n, _)| n == "ENCRYPTION FOR DATABASE")
            .is_some_and(|(_, v)| v.trim().eq_ignore_ascii_case("ON"))
    }

    /// CONFIGURE DATAFILE | ARCHIVELOG BACKUP COPIES FOR DEVICE TYPE d TO n: the copies a
    /// BACKUP without COPIES writes of each piece (1 unless configured).
    pub fn backup_copies(&self, archivelog: bool, device: DeviceType) -> u32 {
        let what = if archivelog { "ARCHIVELOG" } else { "DATAFILE" };
        self.copies_setting(what, device).unwrap_or(1)
    }

    fn copies_setting(&self, what: &str, device: DeviceType) -> Option<u32> {
        let name = format!("{what} BACKUP COPIES FOR DEVICE TYPE");
        self.other
            .iter()
            .filter(|(n, _)| *n == name)
            .filter_map(|(_, v)| copies_value(v))
            .filter(|(d, _)| *d == device)
            .map(|(_, n)| n)
            .next_back()
    }

    /// Builds the configuration from V$RMAN_CONFIGURATION rows.
    pub fn from_rows(rows: &[(String, String)]) -> Self {
        let mut c = Config::default();
        for (name, value) in rows {
            let Some(item) = parse_stored(name, value) else {
                c.other.push((name.clone(), value.clone()));
                continue;
            };
            c.set.push(name.clone());
            match item {
                Configure::Retention(Some(p)) => c.retention = p,
                Configure::Channel {
                    number,
                    device,
                    opts: Some(o),
                } => {
                    c.channels.insert((device, number), o);
                }
                Configure::Device {
                    device,
                    setting: Some(s),
                } => {
                    c.parallelism.insert(device, s.parallelism);
                    if let Some(t) = s.backup_type {
                        c.backup_type.insert(device, t);
                    }
                }
                Configure::DefaultDevice(Some(d)) => c.default_device = d,
                Configure::ControlfileAutobackup(Some(v)) => c.autobackup = v,
                Configure::AutobackupFormat {
                    device,
                    format: Some(f),
                } => {
                    c.autobackup_format.insert(device, f);
                }
                Configure::Other {
                    name,
                    value: Some(v),
                } => c.other.push((name, v)),
                Configure::Exclude {
                    tablespace,
                    clear: false,
                } => c.excluded.push(tablespace),
                _ => {}
            }
        }
        c
    }

    /// PARALLELISM of a device type (default 1).
    pub fn parallelism(&self, d: DeviceType) -> u32 {
        self.parallelism.get(&d).copied().unwrap_or(1)
    }

    /// Options of automatic channel `n` (1-based) of a device type.
    pub fn channel_options(&self, d: DeviceType, n: u32) -> ChannelOptions {
        let generic = self.channels.get(&(d, None)).cloned().unwrap_or_default();
        match self.channels.get(&(d, Some(n))) {
            Some(o) => o.over(&generic),
            None => generic,
        }
    }

    /// SHOW ALL lines.
    pub fn show_all(&self, db_unique_name: &str, snapshot: &str) -> Vec<String> {
        let mut v = vec![format!(
            "RMAN configuration parameters for database with db_unique_name {db_unique_name} are:"
        )];
        let dflt = |name: &str| {
            if self.set.iter().any(|s| s == name) {
                ""
            } else {
                " # default"
            }
        };
        v.push(format!(
            "CONFIGURE RETENTION POLICY TO {};{}",
            retention_text(&self.retention),
            dflt("RETENTION POLICY")
        ));
        let other = |name: &str, default: &str| -> String {
            match self.other.iter().find(|(n, _)| n == name) {
                Some((_, val)) => format!("CONFIGURE {name} {val};"),
                None => format!("CONFIGURE {name} {default}; # default"),
            }
        };
        v.push(other("BACKUP OPTIMIZATION", "OFF"));
        v.push(format!(
            "CONFIGURE DEFAULT DEVICE TYPE TO {};{}",
            device_text(self.default_device),
            dflt("DEFAULT DEVICE TYPE TO")
        ));
        v.push(format!(
            "CONFIGURE CONTROLFILE AUTOBACKUP {};{}",
            if self.autobackup { "ON" } else { "OFF" },
            dflt("CONTROLFILE AUTOBACKUP")
        ));
        let mut devices = vec![DeviceType::Disk];
        if self.parallelism.contains_key(&DeviceType::Sbt)
            || self.channels.keys().any(|(d, _)| *d == DeviceType::Sbt)
            || self.autobackup_format.contains_key(&DeviceType::Sbt)
        {
            devices.push(DeviceType::Sbt);
        }
        for d in &devices {
            match self.autobackup_format.get(d) {
                Some(f) => v.push(format!(
                    "CONFIGURE CONTROLFILE AUTOBACKUP FORMAT FOR DEVICE TYPE {} TO {};",
                    device_text(*d),
                    quote(f)
                )),
                None => v.push(format!(
                    "CONFIGURE CONTROLFILE AUTOBACKUP FORMAT FOR DEVICE TYPE {} TO '%F'; # default",
                    device_text(*d)
                )),
            }
        }
        for d in &devices {
            let explicit = self.parallelism.contains_key(d);
            v.push(format!(
                "CONFIGURE DEVICE TYPE {} PARALLELISM {} BACKUP TYPE TO {};{}",
                device_text(*d),
                self.parallelism(*d),
                self.backup_type.get(d).map_or("BACKUPSET", String::as_str),
                if explicit { "" } else { " # default" }
            ));
        }
        for d in &devices {
            for what in ["DATAFILE", "ARCHIVELOG"] {
                let n = self.backup_copies(what == "ARCHIVELOG", *d);
                v.push(format!(
                    "CONFIGURE {what} BACKUP COPIES FOR DEVICE TYPE {} TO {n};{}",
                    device_text(*d),
                    if self.copies_setting(what, *d).is_some() {
                        ""
                    } else {
                        " # default"
                    }
                ));
            }
        }
        for ((d, n), o) in &self.channels {
            v.push(format!(
                "CONFIGURE CHANNEL {}DEVICE TYPE {}{};",
                n.map(|n| format!("{n} ")).unwrap_or_default(),
                device_text(*d),
                channel_options_text(o)
            ));
        }
        v.push(other("MAXSETSIZE", "TO UNLIMITED"));
        for t in &self.excluded {
            v.push(format!("CONFIGURE EXCLUDE FOR TABLESPACE {t};"));
        }
        v.push(other("ENCRYPTION FOR DATABASE", "OFF"));
        v.push(other("ENCRYPTION ALGORITHM", "'AES128'"));
        v.push(other(
            "COMPRESSION ALGORITHM",
            "'BASIC' AS OF RELEASE 'DEFAULT' OPTIMIZE FOR LOAD TRUE ",
        ));
        v.push(other("RMAN OUTPUT", "TO KEEP FOR 7 DAYS"));
        v.push(other("ARCHIVELOG DELETION POLICY", "TO NONE"));
        v.push(other(
            "SNAPSHOT CONTROLFILE NAME",
            &format!("TO {}", quote(snapshot)),
        ));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(s: &str) -> Configure {
        match parse(s).unwrap().remove(0).cmd {
            Command::Configure(c) => c,
            _ => panic!(),
        }
    }

    #[test]
    fn round_trips_through_stored_text() {
        let items = [
            "configure retention policy to recovery window of 7 days;",
            "configure channel device type sbt parms 'SBT_LIBRARY=/l.so, ENV=(A=1)' maxpiecesize 1G;",
            "configure channel 2 device type disk format '/b/%U';",
            "configure device type sbt parallelism 2 backup type to backupset;",
            "configure default device type to sbt;",
            "configure controlfile autobackup off;",
            "configure controlfile autobackup format for device type sbt to 'cf_%F';",
        ];
        let rows: Vec<(String, String)> = items
            .iter()
            .map(|s| {
                let (n, v) = name_value(&cfg(s));
                (n, v.unwrap())
            })
            .collect();
        let c = Config::from_rows(&rows);
        assert_eq!(c.retention, RetentionPolicy::RecoveryWindow(7));
        assert_eq!(c.default_device, DeviceType::Sbt);
        assert_eq!(c.parallelism(DeviceType::Sbt), 2);
        assert!(!c.autobackup);
        assert_eq!(c.autobackup_format[&DeviceType::Sbt], "cf_%F");
        let o = c.channel_options(DeviceType::Sbt, 1);
        assert_eq!(o.parms.as_deref(), Some("SBT_LIBRARY=/l.so, ENV=(A=1)"));
        assert_eq!(o.maxpiecesize, Some(1 << 30));
        assert_eq!(
            c.channel_options(DeviceType::Disk, 2).formats,
            vec!["/b/%U"]
        );
        assert!(c.channel_options(DeviceType::Disk, 1).formats.is_empty());
        assert!(replaces(
            &cfg("configure channel 2 device type disk format '/c/%U';"),
            &rows[2].1
        ));
        assert!(!replaces(
            &cfg("configure channel device type disk format '/c/%U';"),
            &rows[2].1
        ));
    }
}
