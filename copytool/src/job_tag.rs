//! The job tag the policy engine puts in a request's opaque data (`hai_data`), so a failure the
//! copytool logs names the job and iteration that asked for it. Everything else of an action
//! item is `lustre::ActionItem`.

/// Job and iteration the policy engine tagged a request with (`hai_data` = `lb:j=<job>:i=<iteration>`).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct JobTag {
    /// The job (`j=`), e.g. `auto-3`.
    pub job: Option<String>,
    /// The iteration of that job (`i=`).
    pub iteration: Option<u64>,
}

impl JobTag {
    /// Parses `lb:j=<job>:i=<iteration>` (either field optional, order free, trailing NULs ignored).
    /// Anything else (including data from other requesters) yields an empty tag.
    pub fn parse(data: &[u8]) -> JobTag {
        let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
        let Ok(text) = std::str::from_utf8(&data[..end]) else {
            return JobTag::default();
        };
        let Some(rest) = text.trim().strip_prefix("lb:") else {
            return JobTag::default();
        };
        let mut tag = JobTag::default();
        for field in rest.split(':') {
            if let Some(job) = field.strip_prefix("j=") {
                if !job.is_empty() {
                    tag.job = Some(job.to_string());
                }
            } else if let Some(iter) = field.strip_prefix("i=") {
                tag.iteration = iter.parse().ok();
            }
        }
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_tag_parses_policy_engine_data() {
        let tag = JobTag::parse(b"lb:j=auto-3:i=17\0\0");
        assert_eq!(tag.job.as_deref(), Some("auto-3"));
        assert_eq!(tag.iteration, Some(17));
        let tag = JobTag::parse(b"lb:i=4");
        assert_eq!((tag.job, tag.iteration), (None, Some(4)));
    }

    #[test]
    fn job_tag_ignores_foreign_data() {
        assert_eq!(JobTag::parse(b"bucket=x"), JobTag::default());
        assert_eq!(JobTag::parse(&[0xff, 0xfe]), JobTag::default());
        assert_eq!(JobTag::parse(b""), JobTag::default());
    }
}
