# ---------------------------------------------------------------------------
# Where
# ---------------------------------------------------------------------------

variable "project_id" {
  type        = string
  description = "Google Cloud project ID that hosts the function, topic, scheduler job, secret and alerting."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 chars, lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "Region of the function, its Eventarc trigger, the source bucket, the secret replica and (by default) the scheduler job. Default europe-north1 (Finland) keeps data in the EU near Oslo."
  default     = "europe-north1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[1-9][0-9]?$", var.region))
    error_message = "region must be a Google Cloud region name such as europe-north1, europe-west10 or northamerica-northeast1."
  }
}

variable "scheduler_region" {
  type        = string
  description = "Region of the Cloud Scheduler job, when Cloud Scheduler is not offered in var.region. null means var.region."
  default     = null

  validation {
    condition     = var.scheduler_region == null || can(regex("^[a-z]+-[a-z]+[1-9][0-9]?$", var.scheduler_region))
    error_message = "scheduler_region must be null or a region name such as europe-west1 or europe-west10."
  }
}

variable "labels" {
  type        = map(string)
  description = "Extra labels put on every labelled resource (merged with app=certexpiry, managed-by=terraform)."
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "Label keys must start with a lowercase letter; keys and values may hold only lowercase letters, digits, _ and -, at most 63 chars."
  }
}

variable "enable_apis" {
  type        = bool
  description = "Enable the Google APIs this stack needs (Cloud Functions, Run, Build, Artifact Registry, Eventarc, Pub/Sub, Scheduler, Secret Manager, Logging, Monitoring, IAM). Set false when a platform team manages APIs."
  default     = true
}

# ---------------------------------------------------------------------------
# The function
# ---------------------------------------------------------------------------

variable "function_name" {
  type        = string
  description = "Name of the Cloud Function (2nd gen); also the name of its Cloud Run service and the prefix of every other resource name."
  default     = "certexpiry-nightly-sweep"

  # The limits come from the names derived from it (iam.tf, pubsub.tf, source.tf,
  # artifacts.tf): service account IDs <name>-fn/-evt/-bld must be 6-30 chars (so 3-26), the
  # topic <name> 3-255 chars not starting with "goog", the bucket <project>-<name>-src at most
  # 63 (30 + 1 + 26 + 4 = 61), the repository <name>-images at most 63.
  # tests/terraform/test_names.py derives these bounds from the HCL again.
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,24}[a-z0-9]$", var.function_name)) && !startswith(var.function_name, "goog")
    error_message = "function_name must be 3-26 chars of lowercase letters, digits and hyphens, start with a letter, not end with a hyphen and not start with goog: it is the topic name (3+ chars, no goog prefix) and prefixes service account IDs (6-30 chars: <name>-fn, <name>-evt, <name>-bld)."
  }

  # Cloud Storage refuses a bucket name that contains "google" or a close misspelling of it
  # (g00gle), wherever it stands, and the source bucket is <project>-<name>-src. Project IDs
  # cannot contain "google" themselves, and the hyphens around the name keep it from forming
  # one across the joins, so refusing it in the name is enough.
  validation {
    condition     = !can(regex("g[o0][o0]gle", var.function_name))
    error_message = "function_name must not contain google (or g00gle, g0ogle, go0gle): Cloud Storage refuses bucket names containing it, and the source bucket is <project_id>-<function_name>-src."
  }
}

variable "runtime" {
  type        = string
  description = "Python runtime of the function: python312, python313 or python314."
  default     = "python312"

  validation {
    condition     = contains(["python312", "python313", "python314"], var.runtime)
    error_message = "runtime must be python312, python313 or python314."
  }
}

variable "timeout_seconds" {
  type        = number
  description = "Function timeout in seconds (540 is the maximum for event-driven functions). TIME_BUDGET_S is derived from it: timeout_seconds - budget_reserve_s."
  default     = 540

  validation {
    condition     = var.timeout_seconds >= 60 && var.timeout_seconds <= 540 && floor(var.timeout_seconds) == var.timeout_seconds
    error_message = "timeout_seconds must be a whole number from 60 to 540 (the event-driven maximum)."
  }
}

variable "budget_reserve_s" {
  type        = number
  description = "Seconds kept back from the timeout for finishing the current batch and publishing the continuation message; TIME_BUDGET_S = timeout_seconds - budget_reserve_s (default 540 - 120 = 420)."
  default     = 120

  validation {
    condition     = var.budget_reserve_s >= 30 && floor(var.budget_reserve_s) == var.budget_reserve_s
    error_message = "budget_reserve_s must be a whole number of at least 30 seconds (one batch plus a publish must fit in it)."
  }
}

variable "memory" {
  type        = string
  description = "Memory of one function instance, with unit (M, Mi, G or Gi), e.g. 512M or 1Gi."
  default     = "512M"

  validation {
    condition     = can(regex("^[1-9][0-9]*(M|Mi|G|Gi)$", var.memory))
    error_message = "memory must be a number followed by M, Mi, G or Gi, e.g. 512M."
  }
}

variable "max_instance_count" {
  type        = number
  description = "Maximum number of function instances (each takes one request at a time). Default 2: a duplicate delivery reaches the function and is answered RUN_BUSY (503), not turned away by Cloud Run with a 429; single flight is the database lease's job, not this limit's."
  # Why 2 and not 1: with one instance busy on a segment, Cloud Run queues a second delivery
  # (a Pub/Sub redelivery, a duplicate nightly message) for up to 10 s and then answers 429
  # "no available instance", which is logged as an error and spends one of the dead-letter
  # delivery attempts. A second instance lets the function see that delivery: its claim finds
  # the run's lease held by the live segment (cron_runs.lease_until, claim_nightly_run /
  # claim_continuation) and answers RUN_BUSY, so still only one chain of segments runs per
  # night, whatever this limit is. The errors metric ignores a 429 all the same (log_metrics.tf).
  default = 2

  validation {
    condition     = var.max_instance_count >= 1 && var.max_instance_count <= 10 && floor(var.max_instance_count) == var.max_instance_count
    error_message = "max_instance_count must be a whole number from 1 to 10."
  }
}

# ---------------------------------------------------------------------------
# App settings (environment variables)
# ---------------------------------------------------------------------------

variable "supabase_url" {
  type        = string
  description = "Supabase project URL (https://<ref>.supabase.co), exported as SUPABASE_URL. Required when secret_env_var_name is SUPABASE_SERVICE_ROLE_KEY; must stay empty with DATABASE_URL (the app refuses a URL without its key)."
  default     = ""

  validation {
    condition     = var.supabase_url == "" || can(regex("^https://[^/\\s]+/?$", var.supabase_url))
    error_message = "supabase_url must be empty or an https:// URL with no path, e.g. https://abcd.supabase.co."
  }
}

variable "secret_env_var_name" {
  type        = string
  description = "Which credential the secret holds and under which environment variable it is mounted: SUPABASE_SERVICE_ROLE_KEY (PostgREST) or DATABASE_URL (direct Postgres)."
  default     = "SUPABASE_SERVICE_ROLE_KEY"

  validation {
    condition     = contains(["SUPABASE_SERVICE_ROLE_KEY", "DATABASE_URL"], var.secret_env_var_name)
    error_message = "secret_env_var_name must be SUPABASE_SERVICE_ROLE_KEY or DATABASE_URL."
  }
}

variable "secret_id" {
  type        = string
  description = "Secret Manager secret ID holding the credential. Terraform creates only the empty secret and its IAM; add the value with `gcloud secrets versions add` (see docs/deploy.md)."
  default     = "certexpiry-db-credential"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.secret_id))
    error_message = "secret_id may hold only letters, digits, _ and -, at most 255 chars."
  }
}

variable "secret_version" {
  type        = string
  description = "Secret version mounted into the function: a version number, never latest. A new version takes effect only when this is set to its number and applied (a new revision), so a bad value added to the secret cannot break the next night without a deploy (docs/deploy.md, Rotating the credential)."
  default     = "1"

  validation {
    condition     = can(regex("^[1-9][0-9]*$", var.secret_version))
    error_message = "secret_version must be a version number such as 1 or 2 (not latest): pin the version the function reads, and move it with a deploy (docs/deploy.md, Rotating the credential)."
  }
}

variable "batch_size" {
  type        = number
  description = "BATCH_SIZE: certifications per batch of the sweep (one database call each)."
  default     = 1000

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 1000 && floor(var.batch_size) == var.batch_size
    error_message = "batch_size must be a whole number from 1 to 1000."
  }
}

variable "reminder_days" {
  type        = string
  description = "REMINDER_DAYS: comma-separated days before expiry on which reminders are queued, e.g. 30,7,1."
  default     = "30,7,1"

  validation {
    condition     = can(regex("^[0-9]{1,3}(,[0-9]{1,3})*$", var.reminder_days))
    error_message = "reminder_days must be comma-separated whole numbers without spaces, e.g. 30,7,1."
  }
}

variable "org_timezone" {
  type        = string
  description = "ORG_TIMEZONE: IANA time zone in which the app computes 'today' for expiry dates."
  default     = "Europe/Oslo"

  validation {
    condition     = can(regex("^(UTC|[A-Za-z_]+(/[A-Za-z0-9_+-]+)+)$", var.org_timezone))
    error_message = "org_timezone must be an IANA time zone name such as Europe/Oslo or UTC."
  }
}

variable "service_version" {
  type        = string
  description = "SERVICE_VERSION reported in logs. Empty (the default, and the usual choice) means the first 12 hex digits of local.source_sha256, a hash of the deployed files' names and contents: it changes with the function's code only, so a docs-only commit rolls no new revision. Set it only to override that, e.g. for a release name."
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9._+-]{0,64}$", var.service_version))
    error_message = "service_version may hold only letters, digits and . _ + -, at most 64 chars."
  }
}

# ---------------------------------------------------------------------------
# Schedule and messaging
# ---------------------------------------------------------------------------

variable "schedule" {
  type        = string
  description = "When the nightly trigger fires, once a day: \"MINUTE HOUR * * *\" in var.time_zone. Default 01:00 UTC = 02:00 in Oslo in winter, 03:00 in summer: a time that exists every day of the year, on the same Oslo date as the UTC one (docs/deploy.md, Schedule)."
  default     = "0 1 * * *"

  validation {
    condition     = can(regex("^([0-9]|[1-5][0-9]) ([0-9]|1[0-9]|2[0-3]) \\* \\* \\*$", var.schedule))
    error_message = "schedule must fire once a day: \"MINUTE HOUR * * *\" with a single minute (0-59) and hour (0-23), e.g. \"0 1 * * *\"."
  }

  # Every daylight saving change in the tz database (checked for 2026-2035 by
  # tests/terraform/test_schedule.py) skips or repeats local times between 21:00 and 03:59 only.
  # A local time there does not exist one night a year (or exists twice), so in a zone other
  # than UTC the hour must be 04-20; a night-time run belongs in UTC.
  validation {
    condition     = can(regex("^(Etc/)?(UTC|UCT|Universal|Zulu|GMT|GMT0|GMT[+-]0)$", var.time_zone)) || try(tonumber(split(" ", var.schedule)[1]) >= 4 && tonumber(split(" ", var.schedule)[1]) <= 20, false)
    error_message = "In a time zone with daylight saving time a local time from 21:00 to 03:59 can be skipped or repeated on the nights the clocks change (02:00-02:59 in Europe/Oslo does not exist on the last Sunday of March): give the schedule in UTC (time_zone = \"Etc/UTC\") or use a local hour from 04 to 20."
  }
}

variable "time_zone" {
  type        = string
  description = "IANA time zone of the scheduler's cron schedule. Default Etc/UTC: the schedule exists every day (Cloud Scheduler may skip a job whose local time falls in a daylight saving change)."
  default     = "Etc/UTC"

  validation {
    condition     = can(regex("^(UTC|[A-Za-z_]+(/[A-Za-z0-9_+-]+)+)$", var.time_zone))
    error_message = "time_zone must be an IANA time zone name such as Etc/UTC or Europe/Oslo."
  }
}

variable "scheduler_retry_count" {
  type        = number
  description = "How many times Cloud Scheduler retries a failed publish of the nightly message (publishing, not the run itself: the run's retries are Pub/Sub's)."
  default     = 3

  validation {
    condition     = var.scheduler_retry_count >= 0 && var.scheduler_retry_count <= 5 && floor(var.scheduler_retry_count) == var.scheduler_retry_count
    error_message = "scheduler_retry_count must be a whole number from 0 to 5."
  }
}

variable "topic_message_retention" {
  type        = string
  description = "How long the sweep topic keeps messages (also acknowledged ones), so a subscription can be seeked back to replay a night. Seconds with an s suffix, 600s to 604800s (7 days): the function refuses messages older than 7 days (certexpiry/messages.py MAX_AGE), so a longer retention would only replay refusals."
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.topic_message_retention)) && try(tonumber(trimsuffix(var.topic_message_retention, "s")) >= 600 && tonumber(trimsuffix(var.topic_message_retention, "s")) <= 604800, false)
    error_message = "topic_message_retention must be seconds with an s suffix, from 600s to 604800s (the function's 7-day message age limit)."
  }
}

variable "dead_letter_retention" {
  type        = string
  description = "How long the dead-letter hold subscription keeps undelivered messages for inspection and replay. Seconds with an s suffix, 600s to 604800s (7 days)."
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.dead_letter_retention)) && try(tonumber(trimsuffix(var.dead_letter_retention, "s")) >= 600 && tonumber(trimsuffix(var.dead_letter_retention, "s")) <= 604800, false)
    error_message = "dead_letter_retention must be seconds with an s suffix, from 600s to 604800s."
  }
}

# ---------------------------------------------------------------------------
# IAM switches
# ---------------------------------------------------------------------------

variable "grant_log_writer" {
  type        = bool
  description = "Grant the function's service account roles/logging.logWriter on the project. Needed only if the app writes through the Cloud Logging API (google-cloud-logging's CloudLoggingHandler); it writes JSON lines to stdout, which Cloud Run collects without any role, so off by default."
  default     = false
}

variable "grant_pubsub_token_creator" {
  type        = bool
  description = "Let the Pub/Sub service agent mint tokens for the trigger service account (roles/iam.serviceAccountTokenCreator on that account only). Needed only in projects whose Pub/Sub service agent was enabled on or before 2021-04-08."
  default     = false
}

# ---------------------------------------------------------------------------
# Alerting
# ---------------------------------------------------------------------------

variable "notification_channels" {
  type        = list(string)
  description = "Cloud Monitoring notification channel IDs (projects/P/notificationChannels/N) that every alert policy notifies. Empty: incidents open in the console only."
  default     = []

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", c))])
    error_message = "Each notification channel must look like projects/PROJECT/notificationChannels/NUMBER."
  }
}

variable "completion_deadline_utc_hour" {
  type        = number
  description = "UTC hour (0-23) by which the night's RUN_COMPLETED must have been logged; the 'run not completed' alert is evaluated during this hour. Default 5 = 06:00 Oslo in winter, 07:00 in summer, four hours after the default 01:00 UTC schedule."
  default     = 5

  validation {
    condition     = var.completion_deadline_utc_hour >= 0 && var.completion_deadline_utc_hour <= 23 && floor(var.completion_deadline_utc_hour) == var.completion_deadline_utc_hour
    error_message = "completion_deadline_utc_hour must be a whole number from 0 to 23."
  }
}

variable "completion_lookback_hours" {
  type        = number
  description = "How far back from the deadline hour a RUN_COMPLETED counts for tonight. Must cover the scheduled start (default 6 h: 23:00-05:59 UTC contains the 01:00 UTC start) and stay under 24 h so last night's run does not count."
  default     = 6

  validation {
    condition     = var.completion_lookback_hours >= 1 && var.completion_lookback_hours <= 20 && floor(var.completion_lookback_hours) == var.completion_lookback_hours
    error_message = "completion_lookback_hours must be a whole number from 1 to 20."
  }
}

variable "metric_visibility_wait_s" {
  type        = number
  description = "Seconds the alert policies and dashboard wait after their log-based metrics are created: the Monitoring API refuses a policy on a metric created moments ago (\"could take up to 10 minutes to become available\"). Runs only when a metric is created or replaced; the function's first build runs meanwhile."
  default     = 600

  validation {
    condition     = var.metric_visibility_wait_s >= 0 && var.metric_visibility_wait_s <= 1800 && floor(var.metric_visibility_wait_s) == var.metric_visibility_wait_s
    error_message = "metric_visibility_wait_s must be a whole number of seconds from 0 to 1800."
  }
}

variable "max_message_age_s" {
  type        = number
  description = "Alert when the oldest unacknowledged message on the trigger's subscription is older than this many seconds: a sweep or continuation message that keeps failing and being retried."
  default     = 3600

  validation {
    condition     = var.max_message_age_s >= 300 && var.max_message_age_s <= 86400
    error_message = "max_message_age_s must be from 300 to 86400 seconds."
  }
}

variable "outbox_stall_threshold_s" {
  type        = number
  description = "Alert when the oldest outbox message the app's sender has not acknowledged is older than this many seconds at the end of a night (the OUTBOX_BACKLOG line): the sender stopped. Default 86400: a message queued last night and still waiting tonight. Checked once a night, so an alert comes at most a day after the threshold is passed."
  default     = 86400

  validation {
    condition     = var.outbox_stall_threshold_s > 0 && floor(var.outbox_stall_threshold_s) == var.outbox_stall_threshold_s
    error_message = "outbox_stall_threshold_s must be a whole number of seconds greater than 0."
  }
}

variable "force_destroy_source_bucket" {
  type        = bool
  description = "Let terraform destroy delete the source bucket even when it still holds archives. Keep false in production."
  default     = false
}
