//! The timestamps of server logs, parsed by hand: each format has exactly
//! one layout, and a fixed-position parser is both stricter and far cheaper
//! per line than a general-purpose one.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Utc};

/// `Jan` … `Dec` to 1 … 12.
fn month(name: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    MONTHS
        .iter()
        .position(|m| m.as_slice() == name)
        .and_then(|i| u32::try_from(i + 1).ok())
}

/// Parses ASCII digits only (no sign, no spaces).
fn digits(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 9 {
        return None;
    }
    bytes.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

/// `HH:MM:SS` to its parts.
fn clock(bytes: &[u8]) -> Option<(u32, u32, u32)> {
    if bytes.len() != 8 || bytes[2] != b':' || bytes[5] != b':' {
        return None;
    }
    Some((
        digits(&bytes[0..2])?,
        digits(&bytes[3..5])?,
        digits(&bytes[6..8])?,
    ))
}

fn local(
    offset: FixedOffset,
    year: i32,
    month: u32,
    day: u32,
    (h, m, s): (u32, u32, u32),
) -> Option<DateTime<Utc>> {
    let naive = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(h, m, s)?;
    offset
        .from_local_datetime(&naive)
        .single()
        .map(|time| time.with_timezone(&Utc))
}

/// The Common Log Format's `10/Oct/2000:13:55:36 -0700` (without brackets).
pub(super) fn clf(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() != 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' {
        return None;
    }
    let offset = zone_offset(&b[21..26])?;
    local(
        offset,
        i32::try_from(digits(&b[7..11])?).ok()?,
        month(&b[3..6])?,
        digits(&b[0..2])?,
        clock(&b[12..20])?,
    )
}

/// `+0200` / `-0700`.
fn zone_offset(b: &[u8]) -> Option<FixedOffset> {
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours = i32::try_from(digits(b.get(1..3)?)?).ok()?;
    let minutes = i32::try_from(digits(b.get(3..5)?)?).ok()?;
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// The classic syslog stamp `Oct 10 13:55:36` (day space-padded), which has
/// neither year nor zone: the zone is the configured one, the year the
/// reference time's, or the year before when that would put the line more
/// than a day in the future (a December line read in January).
pub(super) fn syslog_classic(
    text: &str,
    offset: FixedOffset,
    reference: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() != 15 || b[3] != b' ' || b[6] != b' ' {
        return None;
    }
    let day = digits(b[4..6].trim_ascii_start())?;
    let (month, time) = (month(&b[0..3])?, clock(&b[7..15])?);
    with_inferred_year(offset, reference, month, day, time)
}

fn with_inferred_year(
    offset: FixedOffset,
    reference: DateTime<Utc>,
    month: u32,
    day: u32,
    time: (u32, u32, u32),
) -> Option<DateTime<Utc>> {
    let year = reference.year();
    match local(offset, year, month, day, time) {
        Some(t) if t <= reference + chrono::Duration::days(1) => Some(t),
        _ => local(offset, year - 1, month, day, time),
    }
}

/// An RFC 3339 stamp as modern rsyslog writes it:
/// `2024-10-10T13:55:36.123456+02:00`.
pub(super) fn rfc3339(text: &str) -> Option<DateTime<Utc>> {
    if text.len() < 20 || text.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// ctime's `Tue Oct 10 13:55:36 2000` (vsftpd), in the configured zone.
pub(super) fn ctime(text: &str, offset: FixedOffset) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() != 24 || b[3] != b' ' || b[7] != b' ' || b[10] != b' ' || b[19] != b' ' {
        return None;
    }
    local(
        offset,
        i32::try_from(digits(&b[20..24])?).ok()?,
        month(&b[4..7])?,
        digits(b[8..10].trim_ascii_start())?,
        clock(&b[11..19])?,
    )
}

/// Mailman's `Oct 10 13:55:36 2024`, in the configured zone.
pub(super) fn mailman(text: &str, offset: FixedOffset) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() != 20 || b[3] != b' ' || b[6] != b' ' || b[15] != b' ' {
        return None;
    }
    local(
        offset,
        i32::try_from(digits(&b[16..20])?).ok()?,
        month(&b[0..3])?,
        digits(b[4..6].trim_ascii_start())?,
        clock(&b[7..15])?,
    )
}

/// PHP's `10-Oct-2024 13:55:36 UTC` (the zone is `date.timezone`'s name;
/// only `UTC` is understood, any other name means the configured zone).
pub(super) fn php(text: &str, offset: FixedOffset) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() < 20 || b[2] != b'-' || b[6] != b'-' || b[11] != b' ' {
        return None;
    }
    let zone = text.get(20..).unwrap_or("").trim();
    let offset = if zone == "UTC" || zone.is_empty() && b.len() == 20 {
        FixedOffset::east_opt(0)?
    } else {
        offset
    };
    local(
        offset,
        i32::try_from(digits(&b[7..11])?).ok()?,
        month(&b[3..6])?,
        digits(&b[0..2])?,
        clock(&b[12..20])?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    #[test]
    fn clf_time_honours_its_zone() {
        let t = clf("10/Oct/2000:13:55:36 -0700").unwrap();
        assert_eq!(t.to_rfc3339(), "2000-10-10T20:55:36+00:00");
        assert!(clf("10/Foo/2000:13:55:36 -0700").is_none());
        assert!(clf("10/Oct/2000:25:55:36 -0700").is_none());
    }

    #[test]
    fn syslog_time_takes_the_year_before_for_future_dates() {
        let reference = Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap();
        let t = syslog_classic("Dec 31 23:59:59", utc(), reference).unwrap();
        assert_eq!(t.year(), 2024);
        let t = syslog_classic("Jan  1 10:00:00", utc(), reference).unwrap();
        assert_eq!(t.to_rfc3339(), "2025-01-01T10:00:00+00:00");
    }

    #[test]
    fn other_layouts() {
        assert_eq!(
            ctime("Tue Oct 10 13:55:36 2000", utc())
                .unwrap()
                .to_rfc3339(),
            "2000-10-10T13:55:36+00:00"
        );
        assert_eq!(
            mailman("Oct  9 13:55:36 2024", utc()).unwrap().to_rfc3339(),
            "2024-10-09T13:55:36+00:00"
        );
        let berlin = FixedOffset::east_opt(7200).unwrap();
        assert_eq!(
            php("10-Oct-2024 13:55:36 Europe/Berlin", berlin)
                .unwrap()
                .to_rfc3339(),
            "2024-10-10T11:55:36+00:00"
        );
        assert!(rfc3339("2024-10-10T13:55:36.5+02:00").is_some());
    }
}
