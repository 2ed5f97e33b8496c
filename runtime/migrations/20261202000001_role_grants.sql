-- The migrating user may act as each group role (`SET ROLE chrono_ro` on the AI path).
--
-- On Aurora that user is the cluster's master user: a member of `rds_superuser`, never a
-- PostgreSQL superuser, with CREATEROLE and CREATEDB
-- (CREATE ROLE ... LOGIN NOSUPERUSER INHERIT CREATEDB CREATEROLE, https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/Appendix.PostgreSQL.CommonDBATasks.Roles.rds_superuser.html).
-- Creating a role does not make its creator able to SET it:
--
-- * PostgreSQL 15 and older: the creator is not a member at all; CREATEROLE lets it grant
--   membership in any role that is not a superuser, itself included
--   (https://www.postgresql.org/docs/15/sql-createrole.html).
-- * PostgreSQL 16 and newer: the creator is granted the new role WITH ADMIN OPTION but
--   INHERIT FALSE and SET FALSE unless `createrole_self_grant` says otherwise
--   (https://www.postgresql.org/docs/17/runtime-config-client.html#GUC-CREATEROLE-SELF-GRANT,
--   https://www.postgresql.org/docs/17/sql-createrole.html); with ADMIN OPTION it may grant
--   the role to itself, and a GRANT without options has SET TRUE
--   (https://www.postgresql.org/docs/17/sql-grant.html).
--
-- So `SET LOCAL ROLE chrono_ro` failed with "permission denied to set role" for every AI
-- request. The plain GRANT below means the same on 15 and 17 (tests/with-postgres.sh runs
-- the suite as such a user on 17, local mode on the system's PostgreSQL). Granting what is
-- already granted is a notice, not an error; concurrent migrations of several databases of
-- one cluster (the test suite) may race on the same grant row.
DO $$
BEGIN
    BEGIN
        GRANT chrono_rw TO CURRENT_USER;
    EXCEPTION WHEN unique_violation THEN NULL;
    END;
    BEGIN
        GRANT chrono_ro TO CURRENT_USER;
    EXCEPTION WHEN unique_violation THEN NULL;
    END;
END
$$;
