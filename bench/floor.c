/* SPDX-License-Identifier: MIT */
/*
 * floor: the least a job runner can do. Runs COUNT instances of PROGRAM
 * with at most JOBS at once using plain fork + execv + waitpid, with no
 * output capture, no scheduling and no bookkeeping. parallelrun's time for
 * the same work is reported as a ratio to this.
 *
 *   floor JOBS COUNT PROGRAM [ARG]...
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long jobs, count, started = 0, running = 0;

    if (argc < 4) {
        fprintf(stderr, "usage: floor JOBS COUNT PROGRAM [ARG]...\n");
        return 2;
    }
    jobs = atol(argv[1]);
    count = atol(argv[2]);
    while (started < count || running > 0) {
        while (running < jobs && started < count) {
            pid_t pid = fork();

            if (pid < 0) {
                perror("fork");
                return 1;
            }
            if (pid == 0) {
                execv(argv[3], argv + 3);
                _exit(127);
            }
            started++;
            running++;
        }
        if (wait(NULL) > 0)
            running--;
    }
    return 0;
}
