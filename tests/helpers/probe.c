/* probe: a small static program the tests run inside a container, to ask
 * the kernel directly and print its answers (as crun's tests do).
 *
 *   probe syscalls [NAME...]  makes each system call (all of them without
 *                             NAMEs) and prints "NAME ANSWER", ANSWER being
 *                             OK or the errno's name (EPERM, ENOSYS ...)
 *   probe list                the names of the system call probes
 *
 * Every call goes through syscall(2), so no libc wrapper can fall back or
 * hide an errno, and each runs in a child of its own, so that one that
 * succeeds (a new user namespace, say) does not change the next. The
 * arguments make a call do nothing when the kernel runs it: they are
 * invalid (EINVAL, EFAULT, EBADF ...) or harmless. For the probes marked
 * "filter only" the kernel checks those arguments before any capability,
 * so EPERM from them can only come from a seccomp filter.
 *
 * Build: cc -static -O2 -o probe probe.c. More subcommands go into
 * `commands` at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* A child that was created says so by exiting at once. */
static long child_exits(long ret)
{
	if (ret == 0)
		_exit(0);
	if (ret > 0)
		waitpid((pid_t)ret, NULL, 0);
	return ret;
}

static long do_fork(void) { return child_exits(fork()); }

static long do_clone(void)
{
	return child_exits(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
}

/* filter only: a user namespace needs no capability. */
static long do_clone_newuser(void)
{
	return child_exits(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
}

static long clone3_with(uint64_t flags)
{
	struct clone_args args;
	memset(&args, 0, sizeof(args));
	args.flags = flags;
	args.exit_signal = SIGCHLD;
	return child_exits(syscall(SYS_clone3, &args, sizeof(args)));
}

/* filter only */
static long do_clone3(void) { return clone3_with(0); }

static long do_unshare_user(void) /* filter only */
{
	return syscall(SYS_unshare, CLONE_NEWUSER);
}

static long do_unshare_ns(void) /* needs CAP_SYS_ADMIN */
{
	return syscall(SYS_unshare, CLONE_NEWNS);
}

static long do_setns(void) /* filter only: EBADF */
{
	return syscall(SYS_setns, -1, 0);
}

static long do_mount(void) /* filter only: the source is copied first */
{
	return syscall(SYS_mount, (char *)1, "/", NULL, 0, NULL);
}

static long do_umount2(void) /* filter only: unknown flags, EINVAL */
{
	return syscall(SYS_umount2, "/", 0x7fffff00);
}

static long do_pivot_root(void) /* needs CAP_SYS_ADMIN; EFAULT with it */
{
	return syscall(SYS_pivot_root, NULL, NULL);
}

static long do_fsopen(void) /* needs CAP_SYS_ADMIN; EINVAL with it */
{
	return syscall(SYS_fsopen, "tmpfs", 0x7fff);
}

static long do_fsconfig(void) /* filter only: EINVAL */
{
	return syscall(SYS_fsconfig, -1, 0, NULL, NULL, 0);
}

static long do_fsmount(void) /* needs CAP_SYS_ADMIN; EBADF with it */
{
	return syscall(SYS_fsmount, -1, 0, 0);
}

static long do_fspick(void) /* needs CAP_SYS_ADMIN; EINVAL with it */
{
	return syscall(SYS_fspick, -1, "", 0x7fff);
}

static long do_move_mount(void) /* needs CAP_SYS_ADMIN; EINVAL with it */
{
	return syscall(SYS_move_mount, -1, "", -1, "", 0x7fffffff);
}

static long do_open_tree(void) /* filter only: no clone, no capability */
{
	long fd = syscall(SYS_open_tree, AT_FDCWD, "/", 0);
	if (fd >= 0)
		close((int)fd);
	return fd;
}

static long do_mount_setattr(void) /* filter only: size 0, EINVAL */
{
	return syscall(SYS_mount_setattr, AT_FDCWD, "/", 0, NULL, 0);
}

static long do_io_uring_setup(void) /* filter only: EFAULT */
{
	return syscall(SYS_io_uring_setup, 1, NULL);
}

static long do_io_uring_enter(void) /* filter only: EBADF */
{
	return syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0);
}

static long do_io_uring_register(void) /* filter only: EBADF */
{
	return syscall(SYS_io_uring_register, -1, 0, NULL, 0);
}

static long do_keyctl(void) /* filter only: the session keyring's ID */
{
	return syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0);
}

static long do_add_key(void) /* filter only: EFAULT */
{
	return syscall(SYS_add_key, NULL, NULL, NULL, 0, 0);
}

static long do_request_key(void) /* filter only: EFAULT */
{
	return syscall(SYS_request_key, NULL, NULL, NULL, 0);
}

static long do_bpf(void) /* E2BIG with CAP_BPF (and on newer kernels without) */
{
	return syscall(SYS_bpf, 0, NULL, 1 << 20);
}

static long do_perf_event_open(void) /* EFAULT once allowed */
{
	return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
}

static long do_personality_query(void)
{
	return syscall(SYS_personality, 0xffffffff);
}

static long do_personality_bsd(void) /* filter only: PER_BSD */
{
	return syscall(SYS_personality, 0x0006);
}

static long socket_of(int family)
{
	long fd = syscall(SYS_socket, family, SOCK_STREAM, 0);
	if (fd >= 0)
		close((int)fd);
	return fd;
}

static long do_socket_unix(void) { return socket_of(AF_UNIX); }
static long do_socket_alg(void) { return socket_of(AF_ALG); }     /* filter only */
static long do_socket_vsock(void) { return socket_of(AF_VSOCK); } /* filter only */

static long do_exec(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		char *argv[] = {"true", NULL};
		syscall(SYS_execve, "/bin/true", argv, environ);
		_exit(127);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		errno = ENOEXEC;
		return -1;
	}
	return 0;
}

static const struct probe {
	const char *name;
	long (*call)(void);
} probes[] = {
	{"fork", do_fork},
	{"clone", do_clone},
	{"exec", do_exec},
	{"clone-newuser", do_clone_newuser},
	{"clone3", do_clone3},
	{"unshare-user", do_unshare_user},
	{"unshare-ns", do_unshare_ns},
	{"setns", do_setns},
	{"mount", do_mount},
	{"umount2", do_umount2},
	{"pivot_root", do_pivot_root},
	{"fsopen", do_fsopen},
	{"fsconfig", do_fsconfig},
	{"fsmount", do_fsmount},
	{"fspick", do_fspick},
	{"move_mount", do_move_mount},
	{"open_tree", do_open_tree},
	{"mount_setattr", do_mount_setattr},
	{"io_uring_setup", do_io_uring_setup},
	{"io_uring_enter", do_io_uring_enter},
	{"io_uring_register", do_io_uring_register},
	{"keyctl", do_keyctl},
	{"add_key", do_add_key},
	{"request_key", do_request_key},
	{"bpf", do_bpf},
	{"perf_event_open", do_perf_event_open},
	{"personality-query", do_personality_query},
	{"personality-bsd", do_personality_bsd},
	{"socket-unix", do_socket_unix},
	{"socket-alg", do_socket_alg},
	{"socket-vsock", do_socket_vsock},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Runs one probe in a child and prints its answer. */
static int run_probe(const struct probe *p)
{
	int pipefd[2];
	if (pipe(pipefd) < 0)
		return 1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(pipefd[0]);
		errno = 0;
		int answer = p->call() < 0 ? errno : 0;
		if (write(pipefd[1], &answer, sizeof(answer)) != sizeof(answer))
			_exit(2);
		_exit(0);
	}
	close(pipefd[1]);
	int answer = -1;
	ssize_t got = read(pipefd[0], &answer, sizeof(answer));
	close(pipefd[0]);
	waitpid(pid, NULL, 0);
	if (got != sizeof(answer))
		printf("%s DIED\n", p->name);
	else if (answer == 0)
		printf("%s OK\n", p->name);
	else
		printf("%s %s\n", p->name, strerrorname_np(answer) ? strerrorname_np(answer) : "E?");
	return 0;
}

static int syscalls_command(int argc, char **argv)
{
	int status = 0;
	for (size_t i = 0; i < COUNT(probes); i++) {
		int wanted = argc == 0;
		for (int a = 0; a < argc; a++)
			wanted |= strcmp(argv[a], probes[i].name) == 0;
		if (wanted)
			status |= run_probe(&probes[i]);
	}
	for (int a = 0; a < argc; a++) {
		int known = 0;
		for (size_t i = 0; i < COUNT(probes); i++)
			known |= strcmp(argv[a], probes[i].name) == 0;
		if (!known) {
			fprintf(stderr, "probe: no system call probe %s (see probe list)\n", argv[a]);
			status = 2;
		}
	}
	return status;
}

static int list_command(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	for (size_t i = 0; i < COUNT(probes); i++)
		puts(probes[i].name);
	return 0;
}

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{"syscalls", syscalls_command},
	{"list", list_command},
};

int main(int argc, char **argv)
{
	for (size_t i = 0; argc > 1 && i < COUNT(commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 2, argv + 2);
	fprintf(stderr, "usage: probe syscalls [NAME...] | probe list\n");
	return 2;
}
