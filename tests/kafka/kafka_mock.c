/*
 * tm-kafka-mock: a librdkafka mock cluster as a real TCP Kafka service for
 * the end-to-end tests and the benchmark. It starts N brokers (argv[1],
 * default 1), prints the bootstrap servers as the first line on stdout, then
 * serves until stdin closes or SIGTERM/SIGINT arrives. Commands on stdin, one
 * a line, each answered with "ok" or "error: ..." on stdout:
 *   down ID             disconnect broker ID (-1: all) and refuse connections
 *   up ID               accept connections again
 *   topic NAME PARTS    create topic NAME with PARTS partitions
 *   leader NAME PART ID make broker ID the leader of partition PART of NAME
 *   rtt ID MS           add MS of round-trip delay to broker ID
 *   error ID API N CODE fail the next N requests of protocol API (0: Produce)
 *                       to broker ID (-1: any broker) with Kafka error CODE
 * The brokers keep messages in memory only: this is a test fixture, not a
 * broker.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void reply(rd_kafka_resp_err_t err)
{
    if (err)
        printf("error: %s\n", rd_kafka_err2str(err));
    else
        printf("ok\n");
    fflush(stdout);
}

static rd_kafka_resp_err_t push_errors(rd_kafka_mock_cluster_t *mc, int broker, int16_t api, int n,
                                       rd_kafka_resp_err_t err)
{
    if (n < 1)
        return RD_KAFKA_RESP_ERR__INVALID_ARG;
    if (broker >= 0) {
        rd_kafka_resp_err_t r = RD_KAFKA_RESP_ERR_NO_ERROR;

        for (int i = 0; i < n && !r; i++)
            r = rd_kafka_mock_broker_push_request_error_rtts(mc, broker, api, 1, err, 0);
        return r;
    }
    for (int i = 0; i < n; i++)
        rd_kafka_mock_push_request_errors(mc, api, 1, err);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static void run_command(rd_kafka_mock_cluster_t *mc, char *line)
{
    char name[256];
    int a, b, c, d;

    line[strcspn(line, "\r\n")] = '\0';
    if (sscanf(line, "down %d", &a) == 1)
        reply(rd_kafka_mock_broker_set_down(mc, a));
    else if (sscanf(line, "up %d", &a) == 1)
        reply(rd_kafka_mock_broker_set_up(mc, a));
    else if (sscanf(line, "topic %255s %d", name, &a) == 2)
        reply(rd_kafka_mock_topic_create(mc, name, a, 1));
    else if (sscanf(line, "leader %255s %d %d", name, &a, &c) == 3)
        reply(rd_kafka_mock_partition_set_leader(mc, name, a, c));
    else if (sscanf(line, "rtt %d %d", &a, &b) == 2)
        reply(rd_kafka_mock_broker_set_rtt(mc, a, b));
    else if (sscanf(line, "error %d %d %d %d", &a, &b, &c, &d) == 4)
        reply(push_errors(mc, a, (int16_t)b, c, (rd_kafka_resp_err_t)d));
    else if (line[0]) {
        printf("error: unknown command \"%s\"\n", line);
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    int nbrokers = argc > 1 ? atoi(argv[1]) : 1;
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    char line[1024];
    size_t used = 0;

    if (nbrokers < 1 || nbrokers > 16) {
        fprintf(stderr, "usage: tm-kafka-mock [BROKERS 1..16]\n");
        return 2;
    }
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "tm-kafka-mock: %s\n", errstr);
        return 1;
    }
    mc = rd_kafka_mock_cluster_new(rk, nbrokers);
    if (!mc) {
        fprintf(stderr, "tm-kafka-mock: cannot create the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);

    while (!stop_requested) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int r = poll(&pfd, 1, 200);
        ssize_t n;

        if (r < 0 && errno != EINTR)
            break;
        if (r <= 0)
            continue;
        n = read(STDIN_FILENO, line + used, sizeof(line) - 1 - used);
        if (n <= 0)
            break; /* stdin closed: the test or script that started us is gone */
        used += (size_t)n;
        line[used] = '\0';
        for (char *nl; (nl = strchr(line, '\n'));) {
            *nl = '\0';
            run_command(mc, line);
            used -= (size_t)(nl + 1 - line);
            memmove(line, nl + 1, used + 1);
        }
        if (used == sizeof(line) - 1)
            used = 0; /* an absurdly long line: drop it */
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
