begin transaction
;
CREATE SCHEMA IF NOT EXISTS "<schema>"
;
CREATE TABLE IF NOT EXISTS "<schema>"."users" (
    "user_id" VARCHAR(64) NOT NULL,
    "first_name" VARCHAR(256),
    "last_name" VARCHAR(256),
    "gender" VARCHAR(16),
    "level" VARCHAR(16),
    "last_seen_at" TIMESTAMP,
    PRIMARY KEY ("user_id")
)
DISTSTYLE ALL
SORTKEY ("user_id")
;
CREATE TABLE IF NOT EXISTS "<schema>"."artists" (
    "artist_id" VARCHAR(32) NOT NULL,
    "name" VARCHAR(1024),
    "location" VARCHAR(1024),
    "latitude" DOUBLE PRECISION,
    "longitude" DOUBLE PRECISION,
    PRIMARY KEY ("artist_id")
)
DISTSTYLE ALL
SORTKEY ("artist_id")
;
CREATE TABLE IF NOT EXISTS "<schema>"."songs" (
    "song_id" VARCHAR(32) NOT NULL,
    "title" VARCHAR(1024),
    "artist_id" VARCHAR(32),
    "year" SMALLINT,
    "duration" DOUBLE PRECISION,
    PRIMARY KEY ("song_id"),
    FOREIGN KEY ("artist_id") REFERENCES "<schema>"."artists" ("artist_id")
)
DISTSTYLE ALL
SORTKEY ("song_id")
;
CREATE TABLE IF NOT EXISTS "<schema>"."time" (
    "start_time" TIMESTAMP NOT NULL,
    "hour" SMALLINT NOT NULL,
    "day" SMALLINT NOT NULL,
    "week" SMALLINT NOT NULL,
    "month" SMALLINT NOT NULL,
    "year" SMALLINT NOT NULL,
    "weekday" SMALLINT NOT NULL,
    PRIMARY KEY ("start_time")
)
DISTSTYLE KEY
DISTKEY ("start_time")
SORTKEY ("start_time")
;
CREATE TABLE IF NOT EXISTS "<schema>"."songplays" (
    "songplay_id" VARCHAR(128) NOT NULL,
    "start_time" TIMESTAMP NOT NULL,
    "user_id" VARCHAR(64) NOT NULL,
    "level" VARCHAR(16),
    "song_id" VARCHAR(32),
    "artist_id" VARCHAR(32),
    "session_id" BIGINT,
    "location" VARCHAR(1024),
    "user_agent" VARCHAR(2048),
    "song_title" VARCHAR(1024),
    "artist_name" VARCHAR(1024),
    "song_length" DOUBLE PRECISION,
    PRIMARY KEY ("songplay_id"),
    FOREIGN KEY ("user_id") REFERENCES "<schema>"."users" ("user_id"),
    FOREIGN KEY ("start_time") REFERENCES "<schema>"."time" ("start_time"),
    FOREIGN KEY ("song_id") REFERENCES "<schema>"."songs" ("song_id"),
    FOREIGN KEY ("artist_id") REFERENCES "<schema>"."artists" ("artist_id")
)
DISTSTYLE KEY
DISTKEY ("start_time")
SORTKEY ("start_time")
;
CREATE TABLE IF NOT EXISTS "<schema>"."user_levels" (
    "user_id" VARCHAR(64) NOT NULL,
    "level" VARCHAR(16) NOT NULL,
    "valid_from" TIMESTAMP NOT NULL,
    "valid_to" TIMESTAMP,
    PRIMARY KEY ("user_id", "valid_from"),
    FOREIGN KEY ("user_id") REFERENCES "<schema>"."users" ("user_id")
)
DISTSTYLE ALL
SORTKEY ("user_id", "valid_from")
;
CREATE TABLE IF NOT EXISTS "<schema>"."_sparkify_song_records" (
    "song_id" VARCHAR(32),
    "title" VARCHAR(1024),
    "artist_id" VARCHAR(32),
    "artist_name" VARCHAR(1024),
    "artist_location" VARCHAR(1024),
    "artist_latitude" DOUBLE PRECISION,
    "artist_longitude" DOUBLE PRECISION,
    "duration" DOUBLE PRECISION,
    "year" BIGINT,
    "num_songs" BIGINT,
    "file" VARCHAR(2048) NOT NULL,
    "line" INTEGER NOT NULL,
    PRIMARY KEY ("file", "line")
)
DISTSTYLE ALL
SORTKEY ("file")
;
CREATE TABLE IF NOT EXISTS "<schema>"."_sparkify_event_records" (
    "user_id" VARCHAR(64),
    "session_id" BIGINT,
    "item_in_session" BIGINT,
    "ts" BIGINT,
    "page" VARCHAR(64),
    "level" VARCHAR(16),
    "first_name" VARCHAR(256),
    "last_name" VARCHAR(256),
    "gender" VARCHAR(16),
    "song" VARCHAR(1024),
    "artist" VARCHAR(1024),
    "length" DOUBLE PRECISION,
    "location" VARCHAR(1024),
    "user_agent" VARCHAR(2048),
    "auth" VARCHAR(32),
    "method" VARCHAR(16),
    "status" BIGINT,
    "registration" DOUBLE PRECISION,
    "file" VARCHAR(2048) NOT NULL,
    "line" INTEGER NOT NULL,
    PRIMARY KEY ("file", "line")
)
DISTSTYLE KEY
DISTKEY ("user_id")
SORTKEY ("user_id", "ts")
;
CREATE TABLE IF NOT EXISTS "<schema>"."_sparkify_song_lookup" (
    "song_title" VARCHAR(1024) NOT NULL,
    "artist_name" VARCHAR(1024) NOT NULL,
    "song_length" DOUBLE PRECISION NOT NULL,
    "song_id" VARCHAR(32) NOT NULL,
    "artist_id" VARCHAR(32),
    PRIMARY KEY ("song_title", "artist_name", "song_length")
)
DISTSTYLE ALL
;
CREATE TABLE IF NOT EXISTS "<schema>"."_sparkify_loaded_files" (
    "url" VARCHAR(2048) NOT NULL,
    "source" VARCHAR(16) NOT NULL,
    "size" BIGINT NOT NULL,
    "version" VARCHAR(256) NOT NULL,
    "run_id" VARCHAR(64) NOT NULL,
    "loaded_at" TIMESTAMP NOT NULL,
    PRIMARY KEY ("url")
)
DISTSTYLE ALL
SORTKEY ("url")
;
CREATE TABLE IF NOT EXISTS "<schema>"."_sparkify_runs" (
    "run_id" VARCHAR(64) NOT NULL,
    "started_at" TIMESTAMP NOT NULL,
    "ended_at" TIMESTAMP,
    "status" VARCHAR(16) NOT NULL,
    "files_read" BIGINT,
    "records_read" BIGINT,
    "records_rejected" BIGINT,
    "rows_merged" VARCHAR(1024),
    "error" VARCHAR(4096),
    PRIMARY KEY ("run_id")
)
DISTSTYLE ALL
SORTKEY ("started_at")
;
CREATE TABLE IF NOT EXISTS "<schema>"."_sparkify_audits" (
    "run_id" VARCHAR(64) NOT NULL,
    "audited_at" TIMESTAMP NOT NULL,
    "checks" BIGINT NOT NULL,
    PRIMARY KEY ("run_id")
)
DISTSTYLE ALL
SORTKEY ("audited_at")
;
commit
;
begin transaction
;
SELECT COUNT(*) FROM "<schema>"."_sparkify_runs" WHERE "status" = 'running'
;
UPDATE "<schema>"."_sparkify_runs" SET "status" = 'abandoned' WHERE "status" = 'running'
;
INSERT INTO "<schema>"."_sparkify_runs" ("run_id", "started_at", "status") VALUES ($1, $2, $3)
;
commit
;
begin transaction
;
SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1 ORDER BY table_name, ordinal_position
;
begin transaction
;
SELECT "url", "source", "size", "version" FROM "<schema>"."_sparkify_loaded_files"
;
begin transaction
;
SELECT (SELECT COUNT(*) FROM (SELECT 1 AS x FROM "<schema>"."_sparkify_song_lookup" LIMIT 1) l) + 1 - (SELECT COUNT(*) FROM (SELECT 1 AS x FROM "<schema>"."_sparkify_song_records" LIMIT 1) r)
;
begin transaction
;
SELECT "song_id", "title", "artist_id", "artist_name", "artist_location", "artist_latitude", "artist_longitude", "duration", "year", "num_songs", "file", "line" FROM "<schema>"."_sparkify_song_records" ORDER BY "file", "line"
;
begin transaction
;
SELECT "status" FROM "<schema>"."_sparkify_runs" WHERE "run_id" = $1
;
DROP TABLE IF EXISTS "stg__sparkify_song_records"
;
CREATE TEMPORARY TABLE "stg__sparkify_song_records" ("song_id" VARCHAR(32), "title" VARCHAR(1024), "artist_id" VARCHAR(32), "artist_name" VARCHAR(1024), "artist_location" VARCHAR(1024), "artist_latitude" DOUBLE PRECISION, "artist_longitude" DOUBLE PRECISION, "duration" DOUBLE PRECISION, "year" BIGINT, "num_songs" BIGINT, "file" VARCHAR(2048), "line" INTEGER)
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "stg__sparkify_song_records" 
FROM 's3://<staging>/<run>/_sparkify_song_records/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
DROP TABLE IF EXISTS "stg__sparkify_event_records"
;
CREATE TEMPORARY TABLE "stg__sparkify_event_records" ("user_id" VARCHAR(64), "session_id" BIGINT, "item_in_session" BIGINT, "ts" BIGINT, "page" VARCHAR(64), "level" VARCHAR(16), "first_name" VARCHAR(256), "last_name" VARCHAR(256), "gender" VARCHAR(16), "song" VARCHAR(1024), "artist" VARCHAR(1024), "length" DOUBLE PRECISION, "location" VARCHAR(1024), "user_agent" VARCHAR(2048), "auth" VARCHAR(32), "method" VARCHAR(16), "status" BIGINT, "registration" DOUBLE PRECISION, "file" VARCHAR(2048), "line" INTEGER)
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "stg__sparkify_event_records" 
FROM 's3://<staging>/<run>/_sparkify_event_records/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
DROP TABLE IF EXISTS "stg_songs"
;
CREATE TEMPORARY TABLE "stg_songs" ("song_id" VARCHAR(32), "title" VARCHAR(1024), "artist_id" VARCHAR(32), "year" SMALLINT, "duration" DOUBLE PRECISION)
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "stg_songs" 
FROM 's3://<staging>/<run>/songs/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
DROP TABLE IF EXISTS "stg_songs_keys"
;
CREATE TEMPORARY TABLE "stg_songs_keys" ("song_id" VARCHAR(32))
;
DROP TABLE IF EXISTS "stg_artists"
;
CREATE TEMPORARY TABLE "stg_artists" ("artist_id" VARCHAR(32), "name" VARCHAR(1024), "location" VARCHAR(1024), "latitude" DOUBLE PRECISION, "longitude" DOUBLE PRECISION)
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "stg_artists" 
FROM 's3://<staging>/<run>/artists/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
DROP TABLE IF EXISTS "stg_artists_keys"
;
CREATE TEMPORARY TABLE "stg_artists_keys" ("artist_id" VARCHAR(32))
;
DROP TABLE IF EXISTS "stg_time"
;
CREATE TEMPORARY TABLE "stg_time" ("start_time" TIMESTAMP, "hour" SMALLINT, "day" SMALLINT, "week" SMALLINT, "month" SMALLINT, "year" SMALLINT, "weekday" SMALLINT)
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "stg_time" 
FROM 's3://<staging>/<run>/time/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
DROP TABLE IF EXISTS "stg_songplays"
;
CREATE TEMPORARY TABLE "stg_songplays" ("songplay_id" VARCHAR(128), "start_time" TIMESTAMP, "user_id" VARCHAR(64), "level" VARCHAR(16), "song_id" VARCHAR(32), "artist_id" VARCHAR(32), "session_id" BIGINT, "location" VARCHAR(1024), "user_agent" VARCHAR(2048), "song_title" VARCHAR(1024), "artist_name" VARCHAR(1024), "song_length" DOUBLE PRECISION)
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "stg_songplays" 
FROM 's3://<staging>/<run>/songplays/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
DROP TABLE IF EXISTS "stg_lookup_changes"
;
CREATE TEMPORARY TABLE "stg_lookup_changes" ("song_title" VARCHAR(1024), "artist_name" VARCHAR(1024), "song_length" DOUBLE PRECISION, "song_id" VARCHAR(32), "artist_id" VARCHAR(32))
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "stg_lookup_changes" 
FROM 's3://<staging>/<run>/lookup_changes/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
DROP TABLE IF EXISTS "stg__sparkify_song_lookup"
;
CREATE TEMPORARY TABLE "stg__sparkify_song_lookup" ("song_title" VARCHAR(1024), "artist_name" VARCHAR(1024), "song_length" DOUBLE PRECISION, "song_id" VARCHAR(32), "artist_id" VARCHAR(32))
;
DROP TABLE IF EXISTS "stg_run_files"
;
CREATE TEMPORARY TABLE "stg_run_files" ("file" VARCHAR(2048))
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "stg_run_files" 
FROM 's3://<staging>/<run>/run_files/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
DROP TABLE IF EXISTS "stg__sparkify_loaded_files"
;
CREATE TEMPORARY TABLE "stg__sparkify_loaded_files" ("url" VARCHAR(2048), "source" VARCHAR(16), "size" BIGINT, "version" VARCHAR(256), "run_id" VARCHAR(64), "loaded_at" TIMESTAMP)
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "stg__sparkify_loaded_files" 
FROM 's3://<staging>/<run>/_sparkify_loaded_files/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
SELECT r."user_id", r."session_id", r."item_in_session" FROM "<schema>"."_sparkify_event_records" r WHERE r."user_id" <> '' AND r."file" IN (SELECT "file" FROM "stg_run_files") UNION SELECT s."user_id", s."session_id", s."item_in_session" FROM "stg__sparkify_event_records" s JOIN "<schema>"."_sparkify_event_records" r ON r."user_id" = s."user_id" AND r."session_id" = s."session_id" AND r."item_in_session" = s."item_in_session" WHERE s."user_id" <> '' AND r."file" NOT IN (SELECT "file" FROM "stg_run_files") UNION SELECT "user_id", "session_id", "item_in_session" FROM "stg__sparkify_event_records" WHERE "user_id" <> '' GROUP BY "user_id", "session_id", "item_in_session" HAVING COUNT(*) > 1
;
DROP TABLE IF EXISTS "touched_users"
;
CREATE TEMPORARY TABLE "touched_users" ("user_id" VARCHAR(64))
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "touched_users" 
FROM 's3://<staging>/<run>/touched_users/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
SELECT t."user_id", t."first_name", t."last_name", t."gender", t."level", t."last_seen_at" FROM "<schema>"."users" t JOIN "touched_users" k ON t."user_id" = k."user_id"
;
SELECT t."user_id", t."level", t."valid_from", t."valid_to" FROM "<schema>"."user_levels" t JOIN "touched_users" k ON t."user_id" = k."user_id"
;
DELETE FROM "<schema>"."_sparkify_song_records" USING "stg_run_files" WHERE "<schema>"."_sparkify_song_records"."file" = "stg_run_files"."file"
;
INSERT INTO "<schema>"."_sparkify_song_records" ("song_id", "title", "artist_id", "artist_name", "artist_location", "artist_latitude", "artist_longitude", "duration", "year", "num_songs", "file", "line") SELECT "song_id", "title", "artist_id", "artist_name", "artist_location", "artist_latitude", "artist_longitude", "duration", "year", "num_songs", "file", "line" FROM "stg__sparkify_song_records"
;
DELETE FROM "<schema>"."_sparkify_event_records" USING "stg_run_files" WHERE "<schema>"."_sparkify_event_records"."file" = "stg_run_files"."file"
;
INSERT INTO "<schema>"."_sparkify_event_records" ("user_id", "session_id", "item_in_session", "ts", "page", "level", "first_name", "last_name", "gender", "song", "artist", "length", "location", "user_agent", "auth", "method", "status", "registration", "file", "line") SELECT "user_id", "session_id", "item_in_session", "ts", "page", "level", "first_name", "last_name", "gender", "song", "artist", "length", "location", "user_agent", "auth", "method", "status", "registration", "file", "line" FROM "stg__sparkify_event_records"
;
DELETE FROM "<schema>"."artists" USING "stg_artists" WHERE "<schema>"."artists"."artist_id" = "stg_artists"."artist_id"
;
DELETE FROM "<schema>"."artists" USING "stg_artists_keys" WHERE "<schema>"."artists"."artist_id" = "stg_artists_keys"."artist_id"
;
INSERT INTO "<schema>"."artists" ("artist_id", "name", "location", "latitude", "longitude") SELECT "artist_id", "name", "location", "latitude", "longitude" FROM "stg_artists"
;
DELETE FROM "<schema>"."songs" USING "stg_songs" WHERE "<schema>"."songs"."song_id" = "stg_songs"."song_id"
;
DELETE FROM "<schema>"."songs" USING "stg_songs_keys" WHERE "<schema>"."songs"."song_id" = "stg_songs_keys"."song_id"
;
INSERT INTO "<schema>"."songs" ("song_id", "title", "artist_id", "year", "duration") SELECT "song_id", "title", "artist_id", "year", "duration" FROM "stg_songs"
;
DELETE FROM "<schema>"."_sparkify_song_lookup" USING "stg_lookup_changes" WHERE "<schema>"."_sparkify_song_lookup"."song_title" = "stg_lookup_changes"."song_title" AND "<schema>"."_sparkify_song_lookup"."artist_name" = "stg_lookup_changes"."artist_name" AND "<schema>"."_sparkify_song_lookup"."song_length" = "stg_lookup_changes"."song_length"
;
INSERT INTO "<schema>"."_sparkify_song_lookup" ("song_title", "artist_name", "song_length", "song_id", "artist_id") SELECT "song_title", "artist_name", "song_length", "song_id", "artist_id" FROM "stg_lookup_changes" WHERE "song_id" IS NOT NULL
;
DROP TABLE IF EXISTS "fix_user_keys"
;
CREATE TEMPORARY TABLE "fix_user_keys" ("user_id" VARCHAR(64))
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "fix_user_keys" 
FROM 's3://<staging>/<run>/fix_user_keys/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
DELETE FROM "<schema>"."users" USING "fix_user_keys" WHERE "<schema>"."users"."user_id" = "fix_user_keys"."user_id"
;
DROP TABLE IF EXISTS "fix_users"
;
CREATE TEMPORARY TABLE "fix_users" ("user_id" VARCHAR(64), "first_name" VARCHAR(256), "last_name" VARCHAR(256), "gender" VARCHAR(16), "level" VARCHAR(16), "last_seen_at" TIMESTAMP)
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "fix_users" 
FROM 's3://<staging>/<run>/fix_users/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
INSERT INTO "<schema>"."users" ("user_id", "first_name", "last_name", "gender", "level", "last_seen_at") SELECT "user_id", "first_name", "last_name", "gender", "level", "last_seen_at" FROM "fix_users"
;
DELETE FROM "<schema>"."user_levels" USING "fix_user_keys" WHERE "<schema>"."user_levels"."user_id" = "fix_user_keys"."user_id"
;
DROP TABLE IF EXISTS "fix_user_levels"
;
CREATE TEMPORARY TABLE "fix_user_levels" ("user_id" VARCHAR(64), "level" VARCHAR(16), "valid_from" TIMESTAMP, "valid_to" TIMESTAMP)
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "fix_user_levels" 
FROM 's3://<staging>/<run>/fix_user_levels/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
INSERT INTO "<schema>"."user_levels" ("user_id", "level", "valid_from", "valid_to") SELECT "user_id", "level", "valid_from", "valid_to" FROM "fix_user_levels"
;
DROP TABLE IF EXISTS "fix_songplay_keys"
;
CREATE TEMPORARY TABLE "fix_songplay_keys" ("songplay_id" VARCHAR(128))
;
CREATE TEMPORARY TABLE "gone_times" AS SELECT p."start_time" FROM "<schema>"."songplays" p JOIN "fix_songplay_keys" k ON k."songplay_id" = p."songplay_id" UNION SELECT p."start_time" FROM "stg_songplays" p JOIN "fix_songplay_keys" k ON k."songplay_id" = p."songplay_id"
;
DELETE FROM "<schema>"."songplays" USING "fix_songplay_keys" WHERE "<schema>"."songplays"."songplay_id" = "fix_songplay_keys"."songplay_id"
;
UPDATE "<schema>"."songplays" SET "song_id" = c."song_id", "artist_id" = c."artist_id" FROM "stg_lookup_changes" c WHERE "<schema>"."songplays"."song_title" = c."song_title" AND "<schema>"."songplays"."artist_name" = c."artist_name" AND "<schema>"."songplays"."song_length" = c."song_length"
;
INSERT INTO "<schema>"."songplays" ("songplay_id", "start_time", "user_id", "level", "song_id", "artist_id", "session_id", "location", "user_agent", "song_title", "artist_name", "song_length") SELECT "songplay_id", "start_time", "user_id", "level", "song_id", "artist_id", "session_id", "location", "user_agent", "song_title", "artist_name", "song_length" FROM "stg_songplays" WHERE "songplay_id" NOT IN (SELECT "songplay_id" FROM "fix_songplay_keys")
;
DROP TABLE IF EXISTS "fix_songplays"
;
CREATE TEMPORARY TABLE "fix_songplays" ("songplay_id" VARCHAR(128), "start_time" TIMESTAMP, "user_id" VARCHAR(64), "level" VARCHAR(16), "song_id" VARCHAR(32), "artist_id" VARCHAR(32), "session_id" BIGINT, "location" VARCHAR(1024), "user_agent" VARCHAR(2048), "song_title" VARCHAR(1024), "artist_name" VARCHAR(1024), "song_length" DOUBLE PRECISION)
;
INSERT INTO "<schema>"."songplays" ("songplay_id", "start_time", "user_id", "level", "song_id", "artist_id", "session_id", "location", "user_agent", "song_title", "artist_name", "song_length") SELECT "songplay_id", "start_time", "user_id", "level", "song_id", "artist_id", "session_id", "location", "user_agent", "song_title", "artist_name", "song_length" FROM "fix_songplays"
;
INSERT INTO "<schema>"."time" ("start_time", "hour", "day", "week", "month", "year", "weekday") SELECT DISTINCT s."start_time", s."hour", s."day", s."week", s."month", s."year", s."weekday" FROM "stg_time" s WHERE NOT EXISTS (SELECT 1 FROM "<schema>"."time" t WHERE t."start_time" = s."start_time")
;
DROP TABLE IF EXISTS "fix_time"
;
CREATE TEMPORARY TABLE "fix_time" ("start_time" TIMESTAMP, "hour" SMALLINT, "day" SMALLINT, "week" SMALLINT, "month" SMALLINT, "year" SMALLINT, "weekday" SMALLINT)
;
INSERT INTO "<schema>"."time" ("start_time", "hour", "day", "week", "month", "year", "weekday") SELECT DISTINCT s."start_time", s."hour", s."day", s."week", s."month", s."year", s."weekday" FROM "fix_time" s WHERE NOT EXISTS (SELECT 1 FROM "<schema>"."time" t WHERE t."start_time" = s."start_time")
;
DELETE FROM "<schema>"."time" WHERE "start_time" IN (SELECT "start_time" FROM "gone_times") AND "start_time" NOT IN (SELECT p."start_time" FROM "<schema>"."songplays" p JOIN "gone_times" c ON c."start_time" = p."start_time")
;
DELETE FROM "<schema>"."_sparkify_loaded_files" USING "stg__sparkify_loaded_files" WHERE "<schema>"."_sparkify_loaded_files"."url" = "stg__sparkify_loaded_files"."url"
;
INSERT INTO "<schema>"."_sparkify_loaded_files" ("url", "source", "size", "version", "run_id", "loaded_at") SELECT "url", "source", "size", "version", "run_id", "loaded_at" FROM "stg__sparkify_loaded_files"
;
SELECT MAX("audited_at") FROM "<schema>"."_sparkify_audits"
;
SELECT (SELECT COUNT("user_id") - COUNT(DISTINCT "user_id") FROM "<schema>"."users") AS "check_0", (SELECT COUNT(*) FROM "<schema>"."users" WHERE "user_id" IS NULL) AS "check_1", (SELECT COUNT("artist_id") - COUNT(DISTINCT "artist_id") FROM "<schema>"."artists") AS "check_2", (SELECT COUNT(*) FROM "<schema>"."artists" WHERE "artist_id" IS NULL) AS "check_3", (SELECT COUNT("song_id") - COUNT(DISTINCT "song_id") FROM "<schema>"."songs") AS "check_4", (SELECT COUNT(*) FROM "<schema>"."songs" WHERE "song_id" IS NULL) AS "check_5", (SELECT COUNT(*) FROM "<schema>"."songs" c LEFT JOIN "<schema>"."artists" p ON p."artist_id" = c."artist_id" WHERE c."artist_id" IS NOT NULL AND p."artist_id" IS NULL) AS "check_6", (SELECT COUNT(*) FROM "<schema>"."songs" WHERE "artist_id" IS NULL) AS "check_7", (SELECT COUNT("start_time") - COUNT(DISTINCT "start_time") FROM "<schema>"."time") AS "check_8", (SELECT COUNT(*) FROM "<schema>"."time" WHERE "start_time" IS NULL) AS "check_9", (SELECT COUNT("songplay_id") - COUNT(DISTINCT "songplay_id") FROM "<schema>"."songplays") AS "check_10", (SELECT COUNT(*) FROM "<schema>"."songplays" WHERE "songplay_id" IS NULL) AS "check_11", (SELECT COUNT(*) FROM "<schema>"."songplays" c LEFT JOIN "<schema>"."users" p ON p."user_id" = c."user_id" WHERE c."user_id" IS NOT NULL AND p."user_id" IS NULL) AS "check_12", (SELECT COUNT(*) FROM "<schema>"."songplays" WHERE "user_id" IS NULL) AS "check_13", (SELECT COUNT(*) FROM "<schema>"."songplays" c LEFT JOIN "<schema>"."time" p ON p."start_time" = c."start_time" WHERE c."start_time" IS NOT NULL AND p."start_time" IS NULL) AS "check_14", (SELECT COUNT(*) FROM "<schema>"."songplays" WHERE "start_time" IS NULL) AS "check_15", (SELECT COUNT(*) FROM "<schema>"."songplays" c LEFT JOIN "<schema>"."songs" p ON p."song_id" = c."song_id" WHERE c."song_id" IS NOT NULL AND p."song_id" IS NULL) AS "check_16", (SELECT COUNT(*) FROM "<schema>"."songplays" c LEFT JOIN "<schema>"."artists" p ON p."artist_id" = c."artist_id" WHERE c."artist_id" IS NOT NULL AND p."artist_id" IS NULL) AS "check_17", (SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM "<schema>"."user_levels" WHERE "user_id" IS NOT NULL AND "valid_from" IS NOT NULL GROUP BY "user_id", "valid_from" HAVING COUNT(*) > 1) d) AS "check_18", (SELECT COUNT(*) FROM "<schema>"."user_levels" WHERE "user_id" IS NULL OR "valid_from" IS NULL) AS "check_19", (SELECT COUNT(*) FROM "<schema>"."user_levels" c LEFT JOIN "<schema>"."users" p ON p."user_id" = c."user_id" WHERE c."user_id" IS NOT NULL AND p."user_id" IS NULL) AS "check_20", (SELECT COUNT(*) FROM "<schema>"."user_levels" WHERE "user_id" IS NULL) AS "check_21", (SELECT COUNT(*) FROM (SELECT "user_id", "level", "valid_from", "valid_to", LEAD("valid_from") OVER (PARTITION BY "user_id" ORDER BY "valid_from") AS next_from, LAG("level") OVER (PARTITION BY "user_id" ORDER BY "valid_from") AS prev_level FROM "<schema>"."user_levels") p WHERE (p."valid_to" IS NULL AND p.next_from IS NOT NULL) OR (p."valid_to" IS NOT NULL AND p.next_from IS NULL) OR p."valid_to" <> p.next_from) AS "check_22", (SELECT COUNT(*) FROM (SELECT "user_id", "level", "valid_from", "valid_to", LEAD("valid_from") OVER (PARTITION BY "user_id" ORDER BY "valid_from") AS next_from, LAG("level") OVER (PARTITION BY "user_id" ORDER BY "valid_from") AS prev_level FROM "<schema>"."user_levels") p WHERE p.prev_level = p."level") AS "check_23", (SELECT COUNT(*) FROM "<schema>"."users" u LEFT JOIN (SELECT "user_id", COUNT(*) AS n FROM "<schema>"."user_levels" WHERE "valid_to" IS NULL GROUP BY "user_id") c ON c."user_id" = u."user_id" WHERE COALESCE(c.n, 0) <> 1) AS "check_24", (SELECT COUNT(*) FROM "<schema>"."users" u JOIN "<schema>"."user_levels" l ON l."user_id" = u."user_id" AND l."valid_to" IS NULL WHERE l."level" <> u."level") AS "check_25", (SELECT COUNT(*) FROM "<schema>"."_sparkify_song_lookup" l LEFT JOIN "<schema>"."songs" s ON s."song_id" = l."song_id" AND s."title" = l."song_title" AND s."duration" = l."song_length" AND (s."artist_id" = l."artist_id" OR (s."artist_id" IS NULL AND l."artist_id" IS NULL)) WHERE s."song_id" IS NULL) AS "check_26", (SELECT (SELECT COUNT(*) FROM (SELECT "songplay_id", "session_id" FROM "stg_songplays" WHERE "songplay_id" NOT IN (SELECT "songplay_id" FROM "fix_songplay_keys") UNION ALL SELECT "songplay_id", "session_id" FROM "fix_songplays") e) - (SELECT COUNT(DISTINCT s."songplay_id") FROM "<schema>"."songplays" s WHERE EXISTS (SELECT 1 FROM (SELECT "songplay_id", "session_id" FROM "stg_songplays" WHERE "songplay_id" NOT IN (SELECT "songplay_id" FROM "fix_songplay_keys") UNION ALL SELECT "songplay_id", "session_id" FROM "fix_songplays") e WHERE e."songplay_id" = s."songplay_id" AND e."session_id" = s."session_id"))) AS "check_27"
;
INSERT INTO "<schema>"."_sparkify_audits" ("run_id", "audited_at", "checks") VALUES ($1, $2, $3)
;
SELECT (SELECT COUNT(*) FROM "<schema>"."users"), (SELECT COUNT(*) FROM "<schema>"."artists"), (SELECT COUNT(*) FROM "<schema>"."songs"), (SELECT COUNT(*) FROM "<schema>"."time"), (SELECT COUNT(*) FROM "<schema>"."songplays"), (SELECT COUNT(*) FROM "<schema>"."user_levels"), (SELECT COUNT("song_id") FROM "<schema>"."songplays")
;
UPDATE "<schema>"."_sparkify_runs" SET "status" = $1, "ended_at" = $2 WHERE "run_id" = $3
;
commit
;
begin transaction
;
UPDATE "<schema>"."_sparkify_runs" SET "ended_at" = $1, "status" = $2, "files_read" = $3, "records_read" = $4, "records_rejected" = $5, "rows_merged" = $6, "error" = $7 WHERE "run_id" = $8
;
commit
