/* test_jobs.c — the job lifecycle against a real PostgreSQL: claims never hand one
 * job to two workers, an expired lease is reclaimed, every transition is audited. */
#include <stdlib.h>
#include <string.h>

#include "consumers/jobs.h"
#include "tests/testlib.h"

START_TEST(test_jobs_claim_once_reclaim_and_audit) {
    char *url = tl_db_create_migrated("jobs");
    PGconn *c = tl_connect(url);
    tl_exec(c, "INSERT INTO exports (id, format) VALUES "
               "('00000000-0000-0000-0000-000000000001', 'CSV'), "
               "('00000000-0000-0000-0000-000000000002', 'JSON')");
    char err[512];
    jobs_t *a = jobs_new(url, JOBS_EXPORTS, "exports", "worker-a", 1, 2, err, sizeof(err));
    jobs_t *b = jobs_new(url, JOBS_EXPORTS, "exports", "worker-b", 1, 2, err, sizeof(err));
    ck_assert_msg(a && b, "%s", err);
    jobs_job_t *ja = NULL, *jb = NULL, *jc = NULL;
    ck_assert_int_eq(jobs_claim(a, &ja, err, sizeof(err)), 0);
    ck_assert_int_eq(jobs_claim(b, &jb, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(ja);
    ck_assert_ptr_nonnull(jb);
    ck_assert_str_ne(ja->id, jb->id);
    ck_assert_str_eq(ja->id, "00000000-0000-0000-0000-000000000001");
    ck_assert_str_eq(ja->format, "CSV");
    ck_assert_int_eq(ja->attempts, 1);
    /* Nothing left while both leases hold. */
    ck_assert_int_eq(jobs_claim(b, &jc, err, sizeof(err)), 0);
    ck_assert_ptr_null(jc);
    /* a completes; b's lease runs out and a reclaims it. */
    ck_assert_int_eq(jobs_finish(a, ja, "COMPLETED", NULL, NULL, 0, NULL, err, sizeof(err)), 0);
    tl_exec(c, "UPDATE exports SET \"leaseExpiresAt\" = now() - interval '1 second' "
               "WHERE id = '00000000-0000-0000-0000-000000000002'");
    ck_assert_int_eq(jobs_claim(a, &jc, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(jc);
    ck_assert_str_eq(jc->id, jb->id);
    ck_assert_str_eq(jc->old_status, "PROCESSING");
    ck_assert_int_eq(jc->attempts, 2);
    /* The old holder can no longer finish it. */
    ck_assert_int_eq(jobs_finish(b, jb, "COMPLETED", NULL, NULL, 0, NULL, err, sizeof(err)), 1);
    /* Released: PENDING again, this claim not counted. */
    ck_assert_int_eq(jobs_release(a, jc, err, sizeof(err)), 0);
    ck_assert_int_eq(tl_query_ll(c, "SELECT attempts FROM exports WHERE id = "
                                    "'00000000-0000-0000-0000-000000000002' AND status = 'PENDING'"),
                     1);
    char *actions = tl_query_text(
        c, "SELECT string_agg(\"entityId\" || ':' || action || ':' || (changes->'status'->>'old')"
           " || '>' || (changes->'status'->>'new'), ',' ORDER BY \"createdAt\", action) "
           "FROM audit_logs WHERE \"entityType\" = 'export' AND \"actorId\" = 'exports'");
    ck_assert_str_eq(actions,
                     "00000000-0000-0000-0000-000000000001:claim:PENDING>PROCESSING,"
                     "00000000-0000-0000-0000-000000000002:claim:PENDING>PROCESSING,"
                     "00000000-0000-0000-0000-000000000001:completed:PROCESSING>COMPLETED,"
                     "00000000-0000-0000-0000-000000000002:reclaim:PROCESSING>PROCESSING,"
                     "00000000-0000-0000-0000-000000000002:release:PROCESSING>PENDING");
    free(actions);
    /* Expiry: a completed export past expiresAt becomes EXPIRED, audited. */
    tl_exec(c, "UPDATE exports SET \"expiresAt\" = now() - interval '1 hour' "
               "WHERE id = '00000000-0000-0000-0000-000000000001'");
    long long n = -1;
    ck_assert_int_eq(jobs_expire(a, &n, NULL, NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(tl_query_ll(c, "SELECT count(*) FROM exports WHERE status = 'EXPIRED'"), 1);
    /* A lease that expired after max_attempts claims fails the job. */
    jobs_job_free(jc);
    jc = NULL;
    ck_assert_int_eq(jobs_claim(b, &jc, err, sizeof(err)), 0);
    ck_assert_int_eq(jc->attempts, 2);
    tl_exec(c, "UPDATE exports SET \"leaseExpiresAt\" = now() - interval '1 second' "
               "WHERE id = '00000000-0000-0000-0000-000000000002'");
    ck_assert_int_eq(jobs_fail_exhausted(a, &n, err, sizeof(err)), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(tl_query_ll(c, "SELECT count(*) FROM audit_logs WHERE action = 'failed'"), 1);
    jobs_job_free(ja);
    jobs_job_free(jb);
    jobs_job_free(jc);
    jobs_destroy(a);
    jobs_destroy(b);
    PQfinish(c);
    tl_db_drop(url);
    free(url);
}
END_TEST

int main(void) {
    Suite *s = suite_create("jobs");
    TCase *tc = tcase_create("lifecycle");
    if (tl_database_url()) tcase_add_test(tc, test_jobs_claim_once_reclaim_and_audit);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}
