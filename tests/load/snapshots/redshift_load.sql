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
SELECT "url", "size", "version" FROM "<schema>"."_sparkify_loaded_files"
;
begin transaction
;
SELECT s."title" AS song, a."name" AS artist, s."duration" AS length, s."song_id", s."artist_id" FROM "<schema>"."songs" s JOIN "<schema>"."artists" a ON a."artist_id" = s."artist_id"
;
begin transaction
;
DROP TABLE IF EXISTS "stg_users"
;
CREATE TEMPORARY TABLE "stg_users" (LIKE "<schema>"."users")
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "stg_users" 
FROM 's3://<staging>/<run>/users/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
DELETE FROM "<schema>"."users" USING "stg_users" WHERE "<schema>"."users"."user_id" = "stg_users"."user_id" AND "stg_users"."last_seen_at" >= "<schema>"."users"."last_seen_at"
;
INSERT INTO "<schema>"."users" ("user_id", "first_name", "last_name", "gender", "level", "last_seen_at") SELECT "user_id", "first_name", "last_name", "gender", "level", "last_seen_at" FROM "stg_users" WHERE NOT EXISTS (SELECT 1 FROM "<schema>"."users" t WHERE t."user_id" = "stg_users"."user_id")
;
DROP TABLE IF EXISTS "stg_artists"
;
CREATE TEMPORARY TABLE "stg_artists" (LIKE "<schema>"."artists")
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "stg_artists" 
FROM 's3://<staging>/<run>/artists/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
DELETE FROM "<schema>"."artists" USING "stg_artists" WHERE "<schema>"."artists"."artist_id" = "stg_artists"."artist_id"
;
INSERT INTO "<schema>"."artists" ("artist_id", "name", "location", "latitude", "longitude") SELECT "artist_id", "name", "location", "latitude", "longitude" FROM "stg_artists" WHERE NOT EXISTS (SELECT 1 FROM "<schema>"."artists" t WHERE t."artist_id" = "stg_artists"."artist_id")
;
DROP TABLE IF EXISTS "stg_songs"
;
CREATE TEMPORARY TABLE "stg_songs" (LIKE "<schema>"."songs")
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "stg_songs" 
FROM 's3://<staging>/<run>/songs/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
DELETE FROM "<schema>"."songs" USING "stg_songs" WHERE "<schema>"."songs"."song_id" = "stg_songs"."song_id"
;
INSERT INTO "<schema>"."songs" ("song_id", "title", "artist_id", "year", "duration") SELECT "song_id", "title", "artist_id", "year", "duration" FROM "stg_songs" WHERE NOT EXISTS (SELECT 1 FROM "<schema>"."songs" t WHERE t."song_id" = "stg_songs"."song_id")
;
DROP TABLE IF EXISTS "stg_time"
;
CREATE TEMPORARY TABLE "stg_time" (LIKE "<schema>"."time")
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "stg_time" 
FROM 's3://<staging>/<run>/time/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
DELETE FROM "<schema>"."time" USING "stg_time" WHERE "<schema>"."time"."start_time" = "stg_time"."start_time"
;
INSERT INTO "<schema>"."time" ("start_time", "hour", "day", "week", "month", "year", "weekday") SELECT "start_time", "hour", "day", "week", "month", "year", "weekday" FROM "stg_time" WHERE NOT EXISTS (SELECT 1 FROM "<schema>"."time" t WHERE t."start_time" = "stg_time"."start_time")
;
DROP TABLE IF EXISTS "stg_songplays"
;
CREATE TEMPORARY TABLE "stg_songplays" (LIKE "<schema>"."songplays")
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "stg_songplays" 
FROM 's3://<staging>/<run>/songplays/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
DELETE FROM "<schema>"."songplays" USING "stg_songplays" WHERE "<schema>"."songplays"."songplay_id" = "stg_songplays"."songplay_id"
;
INSERT INTO "<schema>"."songplays" ("songplay_id", "start_time", "user_id", "level", "song_id", "artist_id", "session_id", "location", "user_agent") SELECT "songplay_id", "start_time", "user_id", "level", "song_id", "artist_id", "session_id", "location", "user_agent" FROM "stg_songplays" WHERE NOT EXISTS (SELECT 1 FROM "<schema>"."songplays" t WHERE t."songplay_id" = "stg_songplays"."songplay_id")
;
DROP TABLE IF EXISTS "stg__sparkify_loaded_files"
;
CREATE TEMPORARY TABLE "stg__sparkify_loaded_files" (LIKE "<schema>"."_sparkify_loaded_files")
;
SELECT true WHERE EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = $1);
;
COPY "stg__sparkify_loaded_files" 
FROM 's3://<staging>/<run>/_sparkify_loaded_files/' IAM_ROLE 'arn:aws:iam::123456789012:role/sparkify-copy'

FORMAT AS PARQUET
;
DELETE FROM "<schema>"."_sparkify_loaded_files" USING "stg__sparkify_loaded_files" WHERE "<schema>"."_sparkify_loaded_files"."url" = "stg__sparkify_loaded_files"."url"
;
INSERT INTO "<schema>"."_sparkify_loaded_files" ("url", "source", "size", "version", "run_id", "loaded_at") SELECT "url", "source", "size", "version", "run_id", "loaded_at" FROM "stg__sparkify_loaded_files" WHERE NOT EXISTS (SELECT 1 FROM "<schema>"."_sparkify_loaded_files" t WHERE t."url" = "stg__sparkify_loaded_files"."url")
;
SELECT COUNT(*) FROM "stg_songplays"
;
SELECT COUNT("user_id") - COUNT(DISTINCT "user_id") FROM "<schema>"."users"
;
SELECT COUNT(*) FROM "<schema>"."users" WHERE "user_id" IS NULL
;
SELECT COUNT("artist_id") - COUNT(DISTINCT "artist_id") FROM "<schema>"."artists"
;
SELECT COUNT(*) FROM "<schema>"."artists" WHERE "artist_id" IS NULL
;
SELECT COUNT("song_id") - COUNT(DISTINCT "song_id") FROM "<schema>"."songs"
;
SELECT COUNT(*) FROM "<schema>"."songs" WHERE "song_id" IS NULL
;
SELECT COUNT(*) FROM "<schema>"."songs" c WHERE c."artist_id" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "<schema>"."artists" p WHERE p."artist_id" = c."artist_id")
;
SELECT COUNT(*) FROM "<schema>"."songs" WHERE "artist_id" IS NULL
;
SELECT COUNT("start_time") - COUNT(DISTINCT "start_time") FROM "<schema>"."time"
;
SELECT COUNT(*) FROM "<schema>"."time" WHERE "start_time" IS NULL
;
SELECT COUNT("songplay_id") - COUNT(DISTINCT "songplay_id") FROM "<schema>"."songplays"
;
SELECT COUNT(*) FROM "<schema>"."songplays" WHERE "songplay_id" IS NULL
;
SELECT COUNT(*) FROM "<schema>"."songplays" c WHERE c."user_id" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "<schema>"."users" p WHERE p."user_id" = c."user_id")
;
SELECT COUNT(*) FROM "<schema>"."songplays" WHERE "user_id" IS NULL
;
SELECT COUNT(*) FROM "<schema>"."songplays" c WHERE c."start_time" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "<schema>"."time" p WHERE p."start_time" = c."start_time")
;
SELECT COUNT(*) FROM "<schema>"."songplays" WHERE "start_time" IS NULL
;
SELECT COUNT(*) FROM "<schema>"."songplays" c WHERE c."song_id" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "<schema>"."songs" p WHERE p."song_id" = c."song_id")
;
SELECT COUNT(*) FROM "<schema>"."songplays" c WHERE c."artist_id" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "<schema>"."artists" p WHERE p."artist_id" = c."artist_id")
;
SELECT COUNT(*) FROM "<schema>"."songplays" s WHERE EXISTS (SELECT 1 FROM "stg_songplays" g WHERE g."songplay_id" = s."songplay_id")
;
SELECT COUNT(*) FROM "<schema>"."users"
;
SELECT COUNT(*) FROM "<schema>"."artists"
;
SELECT COUNT(*) FROM "<schema>"."songs"
;
SELECT COUNT(*) FROM "<schema>"."time"
;
SELECT COUNT(*) FROM "<schema>"."songplays"
;
commit
;
begin transaction
;
UPDATE "<schema>"."_sparkify_runs" SET "ended_at" = $1, "status" = $2, "files_read" = $3, "records_read" = $4, "records_rejected" = $5, "rows_merged" = $6, "error" = $7 WHERE "run_id" = $8
;
commit
