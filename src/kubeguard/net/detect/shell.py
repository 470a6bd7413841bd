"""OS command injection: a small shell / cmd.exe lexer that finds commands where a shell would run them.

`command_injection(value)` reads one decoded value the way `sh -c` or `cmd /c` would after the
application pasted it into a command line: it undoes the usual evasions (quotes and backslashes
inside words, `^` carets, `$@` / `${IFS}`, brace lists `{cat,/etc/passwd}`), splits the value into
tokens (words, separators `; | || & && newline`, a literal two-character `\\n`, substitutions `$(`
`` ` `` `<(`, redirections, quotes) and looks at each command position: the start of the value,
after a separator, inside a substitution. A known command there is scored by what follows it:

* after a separator or inside a substitution, a command is flagged when it stands alone (``;id``,
  ``| dir``, ``';whoami;'``), when its arguments are shaped like a command line's (options ``-la``
  / ``/all``, paths ``/etc/passwd`` / ``C:\\``, a URL or address, a redirection or pipe, a variable),
  when it is one of the commands nobody types in prose (``whoami``, ``systeminfo``), or when a
  Windows command has its subcommand (``net user``, ``reg query``, ``netsh firewall``);
* at the very start of the value (no separator), only command-line-shaped arguments count
  (``cat /etc/passwd``, ``ping -c 3 10.0.0.1``), so "cat food" and "find a store" stay clean;
* a wider vocabulary of unix programs, Windows programs and PowerShell cmdlets (`VOCABULARY`,
  `WINDOWS_TOOLS`, from OWASP CRS's word lists less English words) counts only after a separator or a
  quote break, never as a value starts (READMEs name them there); the lists' English words (`WORDLIKE`:
  ``patch``, ``format``) only with command-line arguments there.

Shell artefacts that are attacks on their own also count: ``/dev/tcp/``, ``>& /dev/``, ``0>&1``,
``${IFS}``, the Shellshock function prefix ``() { :; };``, a glob spelled path at a command
position (``/???/c?t``), a brace list that spells a command once expanded (``{l,-lh}s``), tilde and
parameter expansions that carve out paths (``~+``, ``${HOME:0:1}``) and cmd.exe ``if`` comparisons.
The HTTP detector runs this only on values `patterns.GATE_CMD` marks.
"""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache

# Commands nobody types in prose: flagged at a command position whatever follows.
STRONG = frozenset({
    "whoami", "uname", "ifconfig", "ipconfig", "systeminfo", "netstat", "nslookup", "tasklist", "wmic", "netsh",
    "certutil", "bitsadmin", "powershell", "pwsh", "mkfifo", "busybox", "xmrig", "minerd", "socat", "ncat", "netcat",
    "nc", "wget", "curl", "crontab", "useradd", "usermod", "passwd", "chmod", "chown", "base64", "telnet", "tftp",
    "nohup", "setsid", "getent", "hostname", "uptime", "ver", "qwinsta", "quser", "schtasks", "taskkill", "regsvr32",
    "rundll32", "mshta", "cscript", "wscript", "arp", "route", "traceroute", "tracert", "pwd", "sysctl", "lsof",
    "iptables", "dmesg", "lsb_release", "locate", "finger", "invoke-webrequest", "invoke-expression",
    "invoke-command", "invoke-restmethod", "invoke-wmimethod", "iwr", "iex", "irm", "iwmi", "start-process",
    "new-object", "findstr", "icacls", "whereis", "sysinfo",
})
# Commands flagged when they stand alone after a separator (``;id``, ``| dir``): they mean something bare.
BARE = frozenset({
    "id", "ls", "dir", "pwd", "whoami", "uname", "ifconfig", "ipconfig", "netstat", "systeminfo", "tasklist", "env",
    "ps", "who", "ver", "hostname", "uptime", "sh", "bash", "zsh", "dash", "ksh", "cmd", "powershell", "pwsh",
    "getent", "set", "history", "arp", "route", "lsof", "dmesg", "qwinsta", "quser", "wmic", "df", "w", "groups",
    "visudo", "aptitude", "shutdown", "reboot", "halt", "poweroff", "lastlog", "htop",
})
# Names cmd.exe runs whatever their case (``DIR``, ``Net User``); other commands count only in lower case.
WINDOWS = frozenset({
    "rd", "dir", "type", "net", "reg", "sc", "netsh", "systeminfo", "ipconfig", "tasklist", "wmic", "whoami",
    "hostname",
    "ver", "set", "echo", "copy", "del", "move", "for", "if", "start", "call", "cmd", "powershell", "certutil",
    "bitsadmin", "ping", "timeout", "more", "findstr", "schtasks", "taskkill", "tracert", "route", "arp", "netstat",
    "nslookup", "cd", "icacls", "qwinsta", "quser", "regsvr32", "rundll32", "mshta", "cscript", "wscript",
    "invoke-webrequest", "invoke-expression", "invoke-command", "invoke-restmethod", "invoke-wmimethod", "iwr", "iex",
    "irm", "iwmi", "start-process", "new-object", "pwsh",
})
# Commands that are also words: flagged at a command position when alone or with command-line arguments.
WEAK = frozenset({
    "id", "ls", "cat", "dir", "type", "echo", "printf", "ping", "sleep", "timeout", "find", "head", "tail", "more",
    "less", "ps", "env", "set", "kill", "pkill", "rm", "del", "copy", "move", "touch", "cp", "mv", "awk", "sed",
    "grep", "xargs", "sh", "bash", "zsh", "dash", "ksh", "csh", "tcsh", "python", "python2", "python3", "perl",
    "ruby", "php", "node", "lua", "cmd", "cd", "net", "reg", "sc", "ssh", "scp", "kubectl", "docker", "apt-get", "yum",
    "apk", "tar", "gzip", "zip", "unzip", "openssl", "mail", "sort", "uniq", "wc", "od", "xxd", "strings", "nl",
    "tac", "rev", "cut", "which", "diff", "file", "stat", "date", "time", "expr", "eval", "exec", "source", "start",
    "call", "rd", "ss", "hd", "sg", "pg", "ptx", "esh", "bzz", "lz",
    "for", "if", "vi", "vim", "nano", "mount", "df", "du", "free", "top", "history", "alias", "export", "unset",
    "strace", "ltrace", "flock", "cpulimit", "nice", "ionice", "stdbuf", "watch", "chroot", "unshare", "runuser",
    "taskset", "script", "htop", "visudo", "aptitude", "shutdown", "reboot", "halt", "poweroff", "lastlog",
    "bcdboot", "regedit", "perf", "who", "w", "groups", "last", "finger", "gunzip", "unxz", "zstdcat", "zcat", "bzcat",
    "xzcat", "unzstd", "ll", "trap",
    "systemctl", "service", "chattr", "ln", "mkdir", "rmdir", "dd", "nmap", "dig", "host", "whois", "tee", "column",
    "fetch", "lynx", "telnet", "ftp", "wall", "su", "sudo", "doas", "pip", "npm", "gcc", "make", "jobs", "bg", "fg",
})
# Administration tools that run code or change hosts through their subcommands (``ansible all -m shell``,
# ``chef-client -t``, ``pip3 install``): commands when a line of their own names one with an argument.
ADMIN_TOOLS = frozenset({
    "ansible", "ansible-playbook", "ansible-vault", "ansible-galaxy", "ansible-config", "ansible-console",
    "ansible-doc", "ansible-inventory", "ansible-pull", "chef", "chef-client", "chef-run", "chef-shell", "chef-solo",
    "knife", "cscli", "puppet", "salt", "salt-call", "salt-ssh", "pip3", "pipx", "gem", "cpan",
})
WEAK = WEAK | ADMIN_TOOLS
COMMANDS = STRONG | WEAK
# Unix programs outside the lists above, none an English word: the names OWASP CRS's unix-shell word lists
# (rules 932230-932260, regex-assembly/include/unix-shell-*.ra) do not mark as English, plus `uconv`, `rmt`
# and `top`. They count only after a separator, a substitution or a quote break (never as a value starts,
# where READMEs name them): alone (``;irb``, ``;top``) or with command-line arguments (``;rmt --version``).
VOCABULARY = frozenset({
    "7z", "7za", "7zr", "ab", "ip", "addgroup", "adduser", "agetty", "apt", "aria2c", "arj", "arjdisp", "ascii-xfr",
    "ascii85", "ash", "aspell", "auditctl", "ausearch", "aws", "base32", "basenc", "bpftrace", "bsdcat", "bsdiff",
    "bsdtar", "bunzip2", "busctl", "byebug", "bzdiff", "bzegrep", "bzfgrep", "bzgrep", "bzip2recover", "bzless",
    "bzmore", "c89", "c99", "certbot", "check_by_ssh", "check_cups", "check_log", "check_memory", "check_raid",
    "check_ssl_cert", "check_statusfile", "chflags", "chgpasswd", "chpass", "cmp", "cobcrun", "coproc", "cowsay",
    "cowthink", "csplit", "csvtool", "cupsfilter", "dhclient", "dmidecode", "dmsetup", "dnf", "dosbox", "e2fsck",
    "easy_install", "env-update", "eqn", "exiftool", "facter", "fdmount", "fdumount", "fping6", "ftpstats", "ftpwho",
    "gdb", "genisoimage", "getcap", "ghc", "git", "grc", "groupmod", "gtester", "hexdump", "hostid", "hping3",
    "htdigest", "htpasswd", "ip6tables", "ippeveprinter", "ippfind", "ipptool", "irb", "ispell", "jjs", "journalctl",
    "jq", "jrunscript", "killall", "ksshell", "lastlogin", "ldconfig", "ldd", "lessecho", "lessfile", "lesspipe",
    "lftpget", "loginctl", "logname", "logsave", "losetup", "lualatex", "luatex", "lwp-download", "lwp-dump",
    "lwp-mirror", "lwp-request", "lz4cat", "lzdiff", "lzegrep", "lzfgrep", "lzgrep", "lzless", "lzmadec", "lzmainfo",
    "lzmore", "mktemp", "mlocate", "mosquitto", "msgattrib", "msgcat", "msgconv", "msgfilter", "msgmerge", "msguniq",
    "mtr", "mysqladmin", "mysqldump", "mysqlhotcopy", "mysqlshow", "neofetch", "netkit-ftp", "netplan", "nm",
    "nsenter", "openvpn", "openvt", "pdb", "pdflatex", "pdftex", "perlsh", "php-cgi", "pidstat", "pkexec", "pkg",
    "pkg_info", "pkginfo", "printenv", "pry", "psftp", "ptardiff", "ptargrep", "py3versions", "pyversions", "rcp",
    "readelf", "realpath", "restic", "rlogin", "rlwrap", "rmt", "rmuser", "rpm", "rpmquery", "rpmverify", "rsync-ssl",
    "run-mailcap", "run-parts", "setarch", "setcap", "setenv", "smbclient", "soelim", "sqlite3", "ssh-add",
    "ssh-agent", "ssh-copy-id", "ssh-keygen", "ssh-keyscan", "sshpass", "start-stop-daemon", "sudoedit",
    "sudoreplay", "svn", "svnadmin", "svnlook", "svnserve", "svnsync", "systemd-resolve", "tbl", "tcpdump", "tcping",
    "tcptraceroute", "tic", "timedatectl", "top", "traceroute6", "tshark", "uconv", "unexpand", "unlzma", "unpigz",
    "update-alternatives", "userdel", "uudecode", "uuencode", "valgrind", "vimdiff", "w3m", "wireshark", "xelatex",
    "xmodmap", "xxd", "xzdiff", "xzegrep", "xzfgrep", "xzgrep", "xzless", "xzmore", "yum", "zathura", "zegrep",
    "zfgrep", "zipcloak", "zipcmp", "zipdetails", "zipgrep", "zipinfo", "zipmerge", "zipnote", "zipsplit", "ziptool",
    "gcloud", "redis-cli", "mongo", "mongosh", "etcdctl", "crictl",
    "zmodload", "zsoelim", "zstdgrep", "zstdless", "zstdmt", "zypper",
}) - COMMANDS
# More of CRS's unix-shell words (regex-assembly/include/unix-shell-4andup.ra, -upto3.ra, -noarguments.ra at coreruleset
# 2cbd1d01) that are not English words: package managers, compilers, archivers, pagers, network clients.
VOCABULARY |= frozenset({
    "7zx", "arj-register", "atobm", "basename", "blkid", "breaksw", "byobu", "bzcmp", "bzexe", "bzip2", "c89-gcc",
    "c99-gcc", "capsh", "cargo-audit", "cargo-miri", "cargo-watch", "chdir", "chgrp", "choom", "chsh", "clang",
    "clang++", "clippy-driver", "cobc", "comm", "cpio", "cron", "dpkg", "dvips", "efax", "egrep", "emacs", "endsw",
    "esac", "fdfind", "fdisk", "fgrep", "filetest", "foreach", "fping", "gawk", "gcore", "getfacl", "ghci",
    "ginsh", "gpg", "grcat", "gzcat", "gzexe", "iconv", "iftop", "iostat", "java", "jexec", "lastcomm", "lftp",
    "ls-F", "lscpu", "lshw", "lsmod", "lspci", "lsusb", "lz4", "lz4c", "lzcat", "lzcmp", "lzma", "mailq", "mailx",
    "mawk", "mknod", "mutt", "mysql", "mysqldumpslow", "nasm", "nawk", "nc.openbsd", "nc.traditional", "nping",
    "nroff", "nstat", "onintr", "opkg", "pacman", "pax", "pdb2mb", "pdb3", "perl5", "pftp", "pgrep", "php5",
    "php7", "pico", "piconv", "pigz", "ping6", "popd", "psed", "psql", "ptar", "pushd", "pxz", "raku", "rar",
    "rbash", "redcarpet", "rmt-dump", "rmt-tar", "rnano", "rpmdb", "rsync", "runc", "rust-analyzer", "rust-gdb",
    "rust-lldb", "rustc", "rustdoc", "rustfmt", "rustup", "rview", "rvim", "sched", "sdiff", "sendmail", "setfacl",
    "sftp", "shuf", "slsh", "sudo-rs", "svnauthz", "svnbench", "svndumpfilter", "svnfsfs", "svnmucc", "svnrdump",
    "svnversion", "tailf", "tclsh", "tmux", "troff", "ulimit", "unlink", "unlz4", "unrar", "up2date", "vigr",
    "vipw", "virsh", "visudo-rs", "vmstat", "whiptail", "xetex", "xmore", "xpad", "xterm", "xz", "xzcmp", "xzdec",
    "zcmp", "zdiff", "zgrep", "zless", "zmore", "zrun", "zstd",
}) - COMMANDS
# Windows programs (CRS's windows-commands.ra, less English words), PowerShell's cmdlets (CRS's
# windows-powershell-commands.data) and aliases of three letters or more (regex-assembly/932125.ra; two letters
# occur in random tokens): counted like VOCABULARY, in any case, as cmd.exe and PowerShell read them.
WINDOWS_TOOLS = frozenset({
    "asnp", "clc", "clhy", "cli", "clp", "clv", "cnsn", "cpi", "cpp", "cvpa", "dbp", "dnsn", "ebp", "epal",
    "epcsv", "epsn", "etsn", "exsn", "gal", "gbp", "gci", "gcm", "gcs", "gdr", "gerr", "ghy", "gjb", "gmo", "gps",
    "gpv", "gsn", "gsnp", "gsv", "gwmi", "icm", "ihy", "ipal", "ipcsv", "ipmo", "ipsn", "ise", "nal", "ndr", "nmo",
    "npssc", "nsn", "ogv", "rbp", "rcjb", "rcsn", "rdr", "ren", "rjb", "rmo", "rni", "rnp", "rsn", "rsnp", "rujb",
    "rvpa", "rwmi", "sajb", "sal", "saps", "sasv", "sbp", "shcm", "sls", "spjb", "spps", "spsv", "sujb", "swmi",
    "trcm", "wjb", "atmadm", "attrib", "auditpol", "autochk", "autoconv", "autofmt", "bcdedit", "bdehdcfg",
    "bootcfg", "cacls", "certreq", "chcp", "chglogon", "chgport", "chgusr", "chkdsk", "chkntfs", "cipher",
    "cleanmgr", "cls", "cmdkey", "cmstp", "dcdiag", "dcgpofix", "defrag", "dfsdiag", "dfsrmig", "diantz",
    "diskcomp", "diskcopy", "diskpart", "diskperf", "diskraid", "diskshadow", "dispdiag", "dnscmd", "doskey",
    "driverquery", "endlocal", "eventcreate", "evntcmd", "flattemp", "forfiles", "fsutil", "ftype", "fveupdate",
    "getmac", "gpfixup", "gpresult", "gpupdate", "graftabl", "helpctr", "ipxroute", "irftp", "klist", "ksetup",
    "ktmutil", "ktpass", "lodctr", "logman", "logoff", "lpq", "lpr", "makecab", "mapadmin", "mklink", "mmc",
    "mountvol", "mqbkup", "mqsvc", "mqtgsvc", "msdt", "msiexec", "msinfo32", "mstsc", "nbtstat", "netcfg",
    "netdom", "nfsadmin", "nfsshare", "nfsstat", "nlbmgr", "nltest", "ntbackup", "ntcmdprompt", "ntfrsutl",
    "openfiles", "pagefileconfig", "pathping", "pbadmin", "pentnt", "perfmon", "pktmon", "pnpunattend", "pnputil",
    "prncnfg", "prndrvr", "prnjobs", "prnmngr", "prnport", "prnqctl", "pubprn", "pushprinterconnections",
    "pwlauncher", "qappsrv", "qprocess", "rdpsign", "refsutil", "regini", "relog", "repadmin", "rexec", "risetup",
    "robocopy", "rpcinfo", "rpcping", "rsh", "rwinsta", "scwcmd", "secedit", "serverceipoptin", "servermanagercmd",
    "serverweroptin", "setx", "sfc", "showmount", "subst", "sxstrace", "sysocmgr", "takeown", "tapicfg",
    "tcmsetup", "tlntadmn", "tpmtool", "tpmvscmgr", "tracerpt", "tscon", "tsdiscon", "tsecimp", "tskill", "tsprof",
    "typeperf", "tzutil", "unlodctr", "vssadmin", "waitfor", "wbadmin", "wdsutil", "wecutil", "wevtutil", "winnt",
    "winnt32", "winrs", "xcopy", "add-computer", "add-content", "add-history", "add-jobtrigger",
    "add-localgroupmember", "add-member", "add-pssnapin", "add-type", "checkpoint-computer", "clear-content",
    "clear-eventlog", "clear-history", "clear-host", "clear-item", "clear-itemproperty", "clear-recyclebin",
    "clear-variable", "compare-object", "complete-transaction", "compress-archive", "connect-pssession",
    "connect-wsman", "convert-path", "convert-string", "convertfrom-csv", "convertfrom-json",
    "convertfrom-markdown", "convertfrom-sddlstring", "convertfrom-securestring", "convertfrom-string",
    "convertfrom-stringdata", "convertto-csv", "convertto-html", "convertto-json", "convertto-securestring",
    "convertto-xml", "copy-item", "copy-itemproperty", "debug-job", "debug-process", "debug-runspace",
    "disable-computerrestore", "disable-experimentalfeature", "disable-jobtrigger", "disable-localuser",
    "disable-psbreakpoint", "disable-psremoting", "disable-pssessionconfiguration", "disable-pstrace",
    "disable-pswsmancombinedtrace", "disable-runspacedebug", "disable-scheduledjob", "disable-wsmancredssp",
    "disable-wsmantrace", "disconnect-pssession", "disconnect-wsman", "enable-computerrestore",
    "enable-experimentalfeature", "enable-jobtrigger", "enable-localuser", "enable-psbreakpoint",
    "enable-psremoting", "enable-pssessionconfiguration", "enable-pstrace", "enable-pswsmancombinedtrace",
    "enable-runspacedebug", "enable-scheduledjob", "enable-wsmancredssp", "enable-wsmantrace",
    "enter-pshostprocess", "enter-pssession", "exit-pshostprocess", "exit-pssession", "expand-archive",
    "export-alias", "export-binarymilog", "export-clixml", "export-console", "export-counter", "export-csv",
    "export-formatdata", "export-modulemember", "export-odataendpointproxy", "export-pssession", "find-command",
    "find-dscresource", "find-module", "find-package", "find-packageprovider", "find-rolecapability",
    "find-script", "foreach-object", "format-custom", "format-hex", "format-list", "format-table", "format-wide",
    "get-acl", "get-alias", "get-authenticodesignature", "get-childitem", "get-cimassociatedinstance",
    "get-cimclass", "get-ciminstance", "get-cimsession", "get-clipboard", "get-cmsmessage", "get-command",
    "get-computerinfo", "get-computerrestorepoint", "get-content", "get-controlpanelitem", "get-counter",
    "get-credential", "get-culture", "get-date", "get-error", "get-event", "get-eventlog", "get-eventsubscriber",
    "get-executionpolicy", "get-experimentalfeature", "get-filehash", "get-formatdata", "get-help", "get-history",
    "get-host", "get-hotfix", "get-installedmodule", "get-installedscript", "get-isesnippet", "get-item",
    "get-itemproperty", "get-itempropertyvalue", "get-job", "get-jobtrigger", "get-localgroup",
    "get-localgroupmember", "get-localuser", "get-location", "get-logproperties", "get-markdownoption",
    "get-member", "get-module", "get-operationvalidation", "get-package", "get-packageprovider",
    "get-packagesource", "get-pfxcertificate", "get-process", "get-psbreakpoint", "get-pscallstack", "get-psdrive",
    "get-pshostprocessinfo", "get-psprovider", "get-psreadlinekeyhandler", "get-psreadlineoption",
    "get-psrepository", "get-pssession", "get-pssessioncapability", "get-pssessionconfiguration", "get-pssnapin",
    "get-pssubsystem", "get-random", "get-runspace", "get-runspacedebug", "get-scheduledjob",
    "get-scheduledjoboption", "get-service", "get-timezone", "get-tracesource", "get-transaction", "get-typedata",
    "get-uiculture", "get-unique", "get-uptime", "get-variable", "get-verb", "get-winevent", "get-wmiobject",
    "get-wsmancredssp", "get-wsmaninstance", "group-object", "import-alias", "import-binarymilog", "import-clixml",
    "import-counter", "import-csv", "import-isesnippet", "import-localizeddata", "import-module",
    "import-packageprovider", "import-powershelldatafile", "import-pssession", "install-module", "install-package",
    "install-packageprovider", "install-script", "invoke-asworkflow", "invoke-cimmethod", "invoke-history",
    "invoke-item", "invoke-operationvalidation", "invoke-wsmanaction", "join-path", "join-string",
    "limit-eventlog", "measure-command", "measure-object", "move-item", "move-itemproperty", "new-alias",
    "new-ciminstance", "new-cimsession", "new-cimsessionoption", "new-event", "new-eventlog", "new-filecatalog",
    "new-guid", "new-isesnippet", "new-item", "new-itemproperty", "new-jobtrigger", "new-localgroup",
    "new-localuser", "new-module", "new-modulemanifest", "new-psdrive", "new-psrolecapabilityfile",
    "new-pssession", "new-pssessionconfigurationfile", "new-pssessionoption", "new-pstransportoption",
    "new-psworkflowexecutionoption", "new-psworkflowsession", "new-scheduledjoboption", "new-scriptfileinfo",
    "new-service", "new-temporaryfile", "new-timespan", "new-variable", "new-webserviceproxy", "new-winevent",
    "new-wsmaninstance", "new-wsmansessionoption", "out-default", "out-file", "out-gridview", "out-host",
    "out-null", "out-printer", "out-string", "pop-location", "protect-cmsmessage", "publish-module",
    "publish-script", "push-location", "read-host", "receive-job", "receive-pssession",
    "register-argumentcompleter", "register-cimindicationevent", "register-engineevent", "register-objectevent",
    "register-packagesource", "register-psrepository", "register-pssessionconfiguration", "register-scheduledjob",
    "register-wmievent", "remove-alias", "remove-ciminstance", "remove-cimsession", "remove-computer",
    "remove-event", "remove-eventlog", "remove-item", "remove-itemproperty", "remove-job", "remove-jobtrigger",
    "remove-localgroup", "remove-localgroupmember", "remove-localuser", "remove-module", "remove-psbreakpoint",
    "remove-psdrive", "remove-psreadlinekeyhandler", "remove-pssession", "remove-pssnapin", "remove-service",
    "remove-typedata", "remove-variable", "remove-wmiobject", "remove-wsmaninstance", "rename-computer",
    "rename-item", "rename-itemproperty", "rename-localgroup", "rename-localuser", "reset-computermachinepassword",
    "resolve-path", "restart-computer", "restart-service", "restore-computer", "resume-job", "resume-service",
    "save-help", "save-module", "save-package", "save-script", "select-object", "select-string", "select-xml",
    "send-mailmessage", "set-acl", "set-alias", "set-authenticodesignature", "set-ciminstance", "set-clipboard",
    "set-content", "set-date", "set-executionpolicy", "set-item", "set-itemproperty", "set-jobtrigger",
    "set-localgroup", "set-localuser", "set-location", "set-logproperties", "set-markdownoption",
    "set-packagesource", "set-psbreakpoint", "set-psdebug", "set-psreadlinekeyhandler", "set-psreadlineoption",
    "set-psrepository", "set-pssessionconfiguration", "set-scheduledjob", "set-scheduledjoboption", "set-service",
    "set-strictmode", "set-timezone", "set-tracesource", "set-variable", "set-wmiinstance", "set-wsmaninstance",
    "set-wsmanquickconfig", "show-command", "show-controlpanelitem", "show-eventlog", "show-markdown",
    "sort-object", "split-path", "start-job", "start-service", "start-sleep", "start-threadjob", "start-trace",
    "start-transaction", "start-transcript", "stop-computer", "stop-job", "stop-process", "stop-service",
    "stop-trace", "stop-transcript", "suspend-job", "suspend-service", "switch-process", "tee-object",
    "test-computersecurechannel", "test-connection", "test-filecatalog", "test-json", "test-modulemanifest",
    "test-path", "test-pssessionconfigurationfile", "test-scriptfileinfo", "test-wsman", "trace-command",
    "unblock-file", "undo-transaction", "uninstall-module", "uninstall-package", "uninstall-script",
    "unprotect-cmsmessage", "unregister-event", "unregister-packagesource", "unregister-psrepository",
    "unregister-pssessionconfiguration", "unregister-scheduledjob", "update-formatdata", "update-help",
    "update-list", "update-module", "update-modulemanifest", "update-script", "update-scriptfileinfo",
    "update-typedata", "use-transaction", "wait-debugger", "wait-event", "wait-job", "wait-process",
    "where-object", "write-debug", "write-error", "write-eventlog", "write-host", "write-information",
    "write-output", "write-progress", "write-verbose", "write-warning",
}) - COMMANDS
# Windows binaries that run code on an attacker's behalf (the LOLBAS project's list as CRS rule 932370 has it,
# regex-assembly/932370.ra at coreruleset 2cbd1d01), less English words (`control`, `excel`, `update`) and names of
# two letters: counted like the rest of the Windows vocabulary.
WINDOWS_TOOLS |= frozenset({
    "acccheckconsole", "adplus", "advpack", "agentexecutor", "appinstaller", "appvlp", "aspnet_compiler", "atbroker",
    "bginfo", "cdb", "certoc", "cl_invocation", "cl_loadassembly", "cl_mutexverifiers", "cmdl32", "comsvcs",
    "configsecuritypolicy", "conhost", "coregen", "createdump", "csc", "csi", "customshellhost", "datasvcutil",
    "defaultpack", "desktopimgdownldr", "devicecredentialdeployment", "devtoolslauncher", "dfshim", "dfsvc", "dnx",
    "dotnet", "dump64", "dxcap", "esentutl", "eventvwr", "extexport", "extrac32", "fltmc", "fsi", "fsianycpu",
    "gfxdownloadwrapper", "gpscript", "ie4uinit", "ieadvpack", "ieexec", "ieframe", "ilasm", "imewdbld",
    "infdefaultinstall", "installutil", "jsc", "launch-vsdevshell", "ldifde", "manage-bde", "mavinject", "mftrace",
    "mpcmdrun", "msbuild", "msconfig", "msdeploy", "mshtml", "msohtmed", "mspub", "msxsl", "ntdsutil", "odbcconf",
    "offlinescannershell", "onedrivestandaloneupdater", "openconsole", "pcalua", "pcwrun", "pcwutl", "powerpnt",
    "presentationhost", "printbrm", "procdump", "protocolhandler", "rasautou", "rcsi", "rdrleakdiag", "regasm",
    "register-cimprovider", "regsvcs", "runexehelper", "runonce", "runscripthelper", "scriptrunner", "setres",
    "settingsynchost", "setupapi", "shdocvw", "shell32", "sqldumper", "sqlps", "sqltoolsps", "stordiag",
    "syncappvpublishingserver", "syssetup", "ttdinject", "tttracer", "unregmp2", "utilityfunctions", "vbc",
    "verclsid", "visualuiaverifynative", "vsiisexelauncher", "vsjitdebugger", "winget", "winrm", "winword",
    "wlrmdr", "workfolders", "wsl", "wsreset", "wuauclt", "xwizard", "zipfldr",
}) - COMMANDS
VOCABULARY |= WINDOWS_TOOLS
WINDOWS = WINDOWS | WINDOWS_TOOLS
# Commands flagged alone after `;`, a newline or a substitution, but not as an item of a `|` or `&` list.
ALONE_UNLISTED = VOCABULARY | frozenset({"top"})
# CRS's unix and Windows command words that are English words too (`patch`, `install`, `format`, `where`): in the
# vocabulary, but never alone (";done", "| view" are prose), never in backticks (markdown) and only with command-line
# arguments after a separator (``; patch -p1 < x.diff``, ``& format c: /q``).
WORDLIKE = frozenset({
    "active", "append", "assign", "assoc", "bridge", "bundler", "cancel", "cargo", "cc", "change", "choice",
    "clean", "clip", "color", "comp", "compact", "compress", "convert", "crash", "create", "delete", "detail",
    "dialog", "done", "ed", "edit", "erase", "expand", "expect", "extend", "extract", "fmt", "fold", "format",
    "goto", "hash", "help", "highlight", "inactive", "install", "join", "label", "latex", "ld",
    "links", "list", "local", "look", "lp", "man", "mode", "octave", "offline", "online", "parted", "paste",
    "patch", "path", "pause", "perms", "pr", "print", "prompt", "query", "rake", "recover", "rem", "remove",
    "rename", "repair", "repeat", "replace", "rescan", "reset", "retain", "revert", "screen", "select", "shadow",
    "shift", "shred", "shrink", "snap", "split", "task", "tex", "title", "tree", "uncompress", "verify", "view",
    "vol", "where", "yarn", "yes",
}) - COMMANDS
VOCABULARY |= WORDLIKE
# A command line sent whole and ended with a newline (``visudo\n``, ``nohup who\n``, ``cscli alerts list\n``):
# these commands count at the very start of a value when a newline ends them.
LINE_ENDED = STRONG | BARE | ADMIN_TOOLS
# Commands that are attacks even as a whole value on their own (no separator): nobody names them in a form.
START_ALONE = frozenset({"whoami", "systeminfo", "ipconfig", "ifconfig", "netstat", "tasklist", "uname"})
# Interpreters that run code given inline (`perl -e`, `python -c`).
INTERPRETERS = frozenset({"perl", "python", "python2", "python3", "ruby", "php", "node", "bash", "sh", "zsh", "dash",
                          "ksh", "lua", "powershell", "pwsh"})
# Words that run the next word as a command.
PREFIXES = frozenset({"sudo", "doas", "nohup", "exec", "time", "env", "xargs", "busybox", "setsid", "command",
                      "builtin", "call", "start", "cmd", "su", "eval"})
# What CRS's evasion prefix allows before a command after a separator: an assignment (`;A=1 ifconfig`), a variable
# nothing set, which expands to nothing (`;$a ifconfig`), `!` (`;! ifconfig`).
_SPACER = re.compile(r"!|[A-Za-z_]\w{0,30}=\S*|\$[A-Za-z_]\w{0,30}|\$\{[A-Za-z_]\w{0,30}\}")
_PREFIX_OPTION = re.compile(r"-{1,2}[a-z][\w-]*", re.I)
# Programs that run the command they are given (`strace ifconfig`, `nohup who`).
RUNNERS = PREFIXES | frozenset({"strace", "ltrace", "flock", "cpulimit", "nice", "ionice", "stdbuf", "timeout",
                                "watch", "chroot", "unshare", "runuser", "taskset", "script"})
# Windows commands whose subcommand makes them a command line (``net user``, ``reg query``).
SUBCOMMANDS = {
    "net": frozenset({"user", "users", "localgroup", "group", "view", "share", "use", "accounts", "start", "stop",
                      "session", "config", "time", "file"}),
    "reg": frozenset({"query", "add", "delete", "save", "export", "import", "load", "copy"}),
    "sc": frozenset({"query", "qc", "create", "config", "start", "stop", "delete", "queryex"}),
    "for": frozenset({"/f", "/l", "/d", "/r", "%i", "%%i", "%a", "%%a"}),
    "if": frozenset({"exist", "not", "defined", "errorlevel", "cmdextversion", "/i"}),
    # iproute2's objects (`ip addr`, `ip r`): `ip` counts only after a separator (it is in `VOCABULARY`)
    "ip": frozenset({"a", "addr", "address", "r", "route", "l", "link", "n", "neigh", "neighbour", "rule", "netns",
                     "-br", "-4", "-6", "-s", "-d", "-j"}),
    "netsh": frozenset({"firewall", "advfirewall", "interface", "int", "wlan", "http", "winhttp", "portproxy", "ras",
                        "lan", "dhcp", "routing", "trace", "add", "set", "show", "dump", "exec", "ipsec", "wfp"}),
}
# Service managers and cluster / cloud clients whose subcommand makes a command line after a separator
# (`;systemctl stop firewalld`, `;kubectl get secrets`, `;aws s3 ls`); as a value starts they are how
# READMEs and tickets quote commands. `service` takes the service's name first (`;service ssh stop`).
SEPARATOR_SUBCOMMANDS = {
    "systemctl": frozenset({"start", "stop", "restart", "reload", "enable", "disable", "mask", "kill", "status",
                            "daemon-reload", "list-units", "isolate", "poweroff", "reboot", "edit", "cat"}),
    "service": frozenset({"start", "stop", "restart", "reload", "status", "--status-all"}),
    "kubectl": frozenset({"get", "exec", "run", "apply", "create", "delete", "describe", "logs", "cp", "proxy",
                          "port-forward", "auth", "debug", "patch", "edit", "config", "attach", "expose", "scale"}),
    "docker": frozenset({"run", "exec", "ps", "images", "pull", "push", "cp", "inspect", "build", "kill", "rm",
                         "start", "stop", "save", "load", "commit"}),
    "aws": frozenset({"s3", "sts", "iam", "ec2", "secretsmanager", "ssm", "lambda", "configure", "ecr", "eks",
                      "kms", "dynamodb", "rds"}),
    "gcloud": frozenset({"auth", "compute", "config", "container", "iam", "projects", "secrets", "storage"}),
    "redis-cli": frozenset({"flushall", "flushdb", "keys", "config", "info", "get", "set", "-h", "-p", "-a"}),
    # Windows' backup and shadow-copy tools: what ransomware runs first (`vssadmin delete shadows /all /quiet`)
    "vssadmin": frozenset({"delete", "list", "resize", "create"}),
    "wevtutil": frozenset({"cl", "clear-log", "qe", "query-events", "el", "enum-logs", "sl", "set-log", "epl"}),
    "wbadmin": frozenset({"delete", "start", "get", "stop"}),
}

SEPARATORS = frozenset({";", "|", "||", "&", "&&", "\n", "\\n", "\\r"})
OPENERS = frozenset({"$(", "`", "<(", ">(", "{", "(", "$(("})
_TOKEN = re.compile(
    r"\|\||&&|\$\(\(|\$\(|[<>]\(|\d?>>?&?\d?|<<<?|[;|&\n\r`(){}<>]|\\[nr]|'|\"|(?:[^\s;|&`(){}<>'\"\\$]|\$(?!\()|\\(?![nr]))+",
    re.I,
)
_ARTEFACT = re.compile(
    r"/dev/(?:tcp|udp)/|>&\s*/dev/|\b0>&1|\$\{IFS\}|\$IFS\b|\(\)\s*\{\s*:?\s*;?\s*\}|\|\s*(?:ba|z|da)?sh\b"
    r"|\bnc(?:at)?\s+(?:-\w+\s+)*-[ec]\s|\bpowershell(?:\.exe)?\s+-(?:enc|e|nop|w|c|ep|exec)\w*\b"
    r"|(?:\bcmd(?:\.exe)?|%comspec%)[\s+]+/[ck][\s+]"
    # a fork bomb, a shell escape from vi/ex/gdb, a bracket glob spelling a system path, the shell run by name
    r"|\(\)\s*\{\s*[\w.:]+\s*\|\s*[\w.:]+\s*&\s*\}|\b(?:vim?|ex|gdb|less|more|man)\b[^;|&\n]{0,40}\\?!\s*[a-z]"
    r"|/(?:etc|bin|usr|proc|dev|var|root|home|sbin)/[^\s/]*\[[^\]\s/]+\][^\s/]*"
    r"|^[\s'\"]*\$\{?(?:SHELL|BASH|0)\}?\s+-c\b"
    # the Shellshock prefix as a value starts (bash reads a function definition from it)
    r"|^\s*\(\)\s*\{"
    # a shell and -c in a comma-separated argument list (`-wrapper sh,-c,id`), a command word escaped by a
    # backslash as a value starts
    r"|\b(?:ba|da|z|k)?sh,-c,"
    r"|^\s*\\(?:ls|id|cat|whoami|uname|sh|bash|nc|curl|wget|rm|ps|env)\b"
    # `at` scheduling a command after a separator: a time, then the job in quotes or from a redirection
    r"|(?:[;|&\n]|\\n)\s*at\s+(?:\d{1,2}(?::\d{2})?\s*(?:am|pm)?|now|midnight|noon|teatime)(?:\s*\+\s*\d+\s*\w+)?"
    r"\s*(?:[\"']\s*(?:/|(?:echo|sh|bash|curl|wget|nc|ncat|rm|cat|python3?|perl|php|ruby|chmod|touch|cp|mv)\b)"
    r"|<\s*[/\w])"
    # a directory-stack tilde expansion as the whole value (`~+`, `~-1`: the shell's working directories);
    # parameter expansions that carve a path out of a variable (`${PATH#{}/}`, `${HOME:0:1}`, `${x//a?b/}`)
    r"|^\s*~[+-]\d{0,2}\s*$|\$\{[A-Za-z_]\w*(?:#\{\}|:\d+:\d+\}|//(?:[^{}/\s\\]|\\.)*/\})"
    # the user's shell run by its variable at a command position (`;$SHELL`, `` `${BASH}` ``); a history
    # expansion that runs an earlier command again (`!-1`, `;!!`: CRS 932330)
    r"|(?:[;|&\n`]|\$\(|\\n)\s*\$(?:\{(?:SHELL|BASH|0)\}|(?:SHELL|BASH|0|env:comspec)\b)"
    # cmd.exe's substring of a variable (`%COMSPEC:~-16,1%`): a letter cut out of a path to spell a command
    r"|%\w+:~-?\d+(?:,-?\d+)?%|(?:^|[\s;|&`(])!-\d+\b|(?:[;|&\n`]|\\n)\s*!!",
    re.I,
)
# Shell artefacts looked for only when their anchor is in the value (`<<<`, `IFS=`, a `|`): searched on their own,
# so a value without the anchor does not pay for them (`_ARTEFACT` runs on every value the gate passes).
# sqlite's dot-commands after a separator: a shell escape (`;.shell id`, `.system`), code loaded, files read and
# written (`;.load /tmp/x.so`, `; .output x.php`), the schema dumped
_SQLITE_DOT = re.compile(
    r"(?:[;\n]|\\n)\.\s*\\?[\"']?(?:shell|system|sh)\s+[\w/]"
    r"|(?:[;\n]|\\n)[ \t]*\.[ \t]*\\?[\"']?(?:(?:load|output|once|read|open|import|backup|save|restore|cd)[ \t]+"
    r"['\"]?[\w-]*[/.\\]|(?:databases|dbinfo|fullschema|dump|excel)[ \t]*(?:$|[;\n]|\\n))", re.I)
_ARTEFACT_ANCHORED: tuple[tuple[str, re.Pattern[str]], ...] = (
    # sqlite's dot-commands after a separator (`_SQLITE_DOT`), by each separator it may follow
    (";", _SQLITE_DOT), ("\n", _SQLITE_DOT), ("\\n", _SQLITE_DOT),
    # a shell fed a here-string (`$0<<<$'\\154\\163'`, `bash<<<"id"`), a here-string inside a substitution: the
    # string is run as commands
    ("<<<", re.compile(r"(?:^|[;|&\n`(])\s*(?:\$\{?0\}?|(?:/bin/)?(?:ba|da|z|k)?sh)\s*<<<|\$\([^()]{0,80}<<<",
                        re.I)),
    # the field separator redefined at a command position (`;IFS=];b=cat]/etc/passwd;$b`)
    ("IFS=", re.compile(r"(?:^|[;|&\n`(])\s*IFS=\S")),
    # the shell's arithmetic on literals (`$((3482*7301))`, `$[7*7]`, `$((16#41))`): the probe scanners send to see
    # whether a shell evaluates the value, as `{{7*7}}` is a template's
    ("$((", re.compile(r"\$\(\(\s*(?:\d+\s*[-+*/%^]\s*\d+|\d+#\w+)\s*\)\)")),
    ("$[", re.compile(r"\$\[\s*\d+\s*[-+*/%^]\s*\d+\s*\]")),
    # a command's output piped into an interpreter or compiler that reads its program from stdin (`echo | php7.4`,
    # `curl -s x | python3`): the command at a command position, nothing after the interpreter but the end, a
    # separator or stdin's `-`
    ("|", re.compile(r"(?:^|[;&|\n`(])\s*(?:echo|printf|cat|curl|wget|base64|xxd)\s[^|;&\n]{0,200}\|\s*"
                     r"(?:\$\{[\w.]*\})?(?:php|python[23]?|perl|ruby|node|lua|tclsh|gcc|cc)(?:-?\d+(?:\.\d+)*)?"
                     r"\s*(?:$|[;&|\n]|-(?:\s|$))", re.I)),
)
# A substitution of one lowercase word (`$(foo)`, `<(foo)`, `>(foo)`, `$((foo))`): the shell runs the word as a
# command (or reads it as a variable in arithmetic) whatever it names, so a probe sends a word no list holds
# (CRS 932130): at a command position or glued to a word. Not jQuery's `$(this)` / `$(el).hide()`, make's `$(CC)`
# or a placeholder in prose ("Pay $(price) now").
_WORD_SUBSTITUTION = re.compile(r"(?:\$\(\(?|(?:^|(?<=[;|&`(]))\s*[<>]\()\s*([a-z][\w-]{1,30})\s*\)\)?(?![.\[\w])")
_JS_WORDS = frozenset({"this", "document", "window", "self", "event", "ev", "el", "elem", "element", "item", "obj",
                       "node", "target", "selector", "parent", "form", "input", "button", "link", "row", "cell",
                       "html", "body", "head", "container", "wrapper", "modal", "dialog", "table"})
# A shell function that runs itself in the background or through a pipe: a fork bomb (`f(){ f & f; };f`).
_FORK_BOMB = re.compile(r"([\w.:-]+)\s*\(\)\s*\{[^{}]{0,80}?(?<![\w.:-])\1\s*(?:\(\)\s*)?[&|][^{}]{0,80}\}")
# Variables a value assigns and then runs (`a=nc&&$a -nlvp 555`, `c=cat;a=/etc;$c $a/passwd`).
# A value may be quoted (`v='u'`), an escaped space (`c4=\ `) or a glob (`g=adduse[r]`).
_ASSIGNMENT = re.compile(r"(?:^|(?<=[;&|\s=]))([A-Za-z_]\w{0,15})="
                         r"('[^'\s]{1,64}'|\"[^\"\s]{1,64}\"|\\ |[\w./?*\[\]-]{1,64})(?=[;&|\s]|$)")
# Evasions undone before tokenising: caret escapes, `$@` / `$*` / `$9`, quotes and backslashes inside words.
_TERMINAL = re.compile(r"\\(?:033|x1b|e)\[\d*[a-z]|\x1b\[\d*[a-z]", re.I)
# an escape sequence without its final letter (the letter may be a command's first)
_TERMINAL_OPEN = re.compile(r"\\(?:033|x1b|e)\[[\d;]*|\x1b\[[\d;]*", re.I)
# `p^ing`, `@^p^o^w^e^r^shell`, `/^f`, `%^i`, ` ^i^n` (cmd.exe escapes the next character anywhere)
_CARET = re.compile(r"(?:(?<=[\w@,;&|(/%\s\"])|^)\^(?=\w)")
# a caret quoted between two letters (`""t"^"o"^"k"^"e"^"n"^"s"=*"`): noise cmd.exe drops with the quotes
_QUOTED_CARET = re.compile(r"(?<=\w)\"\^\"(?=\w)")
# (inside a word, the shell's special parameters too: `c$$at /et$?c/pas$_swd` is cat /etc/passwd with noise)
# (and a braced variable of up to three letters nothing set, at a word's start too: `;${I}ec${I}h${I}o`)
# (and a positional parameter past the ninth, which takes braces and nothing sets: `4821${7356}9153`, xray's marker)
_EMPTY_PARAM = re.compile(r"\$(?:[@*\d]|\{(?:[@*]|\d{0,5})\}|\(\))|(?<=\w)(?:\$[$?!_-](?=[\w/])|``|[<>]\(\)"
                          r"|\$\([a-z]\)(?=\w)|`[a-z]`(?=\w)"
                          r"|\$\{?[A-Za-z_]\w{0,2}\}?(?=[\w\s/]))"
                          r"|(?:^|(?<=[\s;&|`(\n'\"]))\$\{[A-Za-z_]\w{0,2}\}(?=\w)")
_IFS = re.compile(r"\$\{IFS\}|\$IFS(?:\$\d)?\b", re.I)
_INWORD_QUOTE = re.compile(r"(?<=[\w/])(?:''|\"\"|'(?=\w[^'\s]*'\w)|\"(?=\w[^\"\s]*\"\w))|(?<=[\w/])['\"](?=\w)")
_EMPTY_QUOTES = re.compile(r"''|\"\"")
# an assignment of a quoted value at a command position, before a command (`;A="x y" ifconfig`)
_QUOTED_ASSIGNMENT = re.compile(
    r"((?:^|[;|&\n`(])\s*[A-Za-z_]\w{0,30}=)(?:'[^'\n]{0,100}'|\"[^\"\n]{0,100}\")(?=[ \t])")
_QUOTED_TAIL = re.compile(r"(?<=\w)(['\"])(\w+)\1(?=[\s/]|$)")
# A word the value starts with, spelled with quotes inside it (`'i'p a`, `c'a't x`): only the shell joins it.
_SPLIT_FIRST = re.compile(r"^\s*(\w*(?:'\w+'|\"\w+\")\w+|\w+(?:'\w+'|\"\w+\")\w*)(?=\s|$)")
_QUOTED_FIRST = re.compile(r"^(\s*)['\"]([\w.-]+)['\"](?=\s)")
# a word of single characters each escaped by a backslash, `\n` included (`i\f\c\o\n\f\i\g`, `\w\h\o`), maybe a version
# after it (`\p\y\t\h\o\n3`)
_ESCAPED_WORD = re.compile(r"(?<![\w\\])\\?[a-z0-9](?:\\[a-z0-9]){3,}\d{0,2}(?![\w\\])", re.I)
_WIN_PATH = re.compile(r"(?:\b[a-z]:|%\w+%|\\\\[\w.$-]+)(?:\\[\w.$ -]+)+\\?", re.I)
_INWORD_BSLASH = re.compile(r"(?<=[\w/])\\(?=[a-mo-qs-z])|(?<![\w:])\\(?=[a-mo-qs-z]\w)", re.I)
_BRACE_LIST = re.compile(r"\{,?([\w./?*-]+),([^{}\s]*)\}")
_IF_SWITCH = re.compile(r"(?:^|(?<=[\s;&|(]))(if)/i(?=\s)", re.I)
# A cmd.exe comparison after `if` and the command it runs: `if (AA) == (AA) echo same`, `if (%1)==(x) CD C:\`.
_CMD_IF = re.compile(r"(?:/i\s+)?(?:not\s+)?(?:\(\s*[^()\s]*\s*\)|\S+)\s*==\s*(?:\(\s*[^()\s]*\s*\)|\S+)\s+[a-z]",
                     re.I)
# A brace list with a word glued to it or escapes inside (`{l,-lh}s`, `c{a,oun}t`, `{,$'whoami',}`, `{n$u\c,-e}`,
# `{\c''\a""t,/e''*?/?a?s??}`: globs in the items after the first).
_BRACE_AFFIX = re.compile(r"(?:^|(?<=[\s;|&`(\n\r'\"$]))([\w$\\]*)\{([\w$\\'\"./-]*,[\w$\\'\",./?*#-]*)\}([\w$\\]*)")
_BRACE_QUOTED = re.compile(r"\$?'([^']*)'|\$?\"([^\"]*)\"")  # `$"x"` is a locale-translated "x"
_BRACE_NOISE = re.compile(r"\$\{?[A-Za-z_]\w{0,2}\}?|\\")
_ENV_VAR = re.compile(r"%(?:comspec|systemroot|windir|programfiles|temp|userprofile|appdata)%", re.I)

# Argument shapes of a command line.
# `-x`, `--long`, cmd.exe's `/s` and `/w:c:\` (a switch with its value), `+x` (chmod, attrib, set), `-5`
_OPTION = re.compile(r"-{1,2}[a-z][\w-]*|/[a-z?]{1,8}(?::\S*)?|\+[a-z]{1,3}|-\d+", re.I)
_PATHISH = re.compile(
    r"(?:[a-z]:)?[\\/][\w.*?~$%\\/\[\]-]*|~/?\S*|\.\.?[\\/]\S*|%\w+%\S*|\\\\\w|\$\w+|\$\{\w+\}", re.I
)
_ADDRESS = re.compile(r"\w+://\S+|\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?|localhost(?::\d+)?"
                      r"|[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|xyz)\b", re.I)
# What a command line at the very start of a value must reach to count: a path with a directory, the root,
# a home or parent path, a share, a URL or an address (options alone are how READMEs show commands).
_TARGET = re.compile(
    r"(?:[a-z]:)?[\\/](?:[\w.*?~$%\[\]!-]*[\\/])+[\w.*?~$%\\/\[\]!-]*|/|~/?\S*|\.\.[\\/]\S*|\\\\\w\S*|%\w+%\S*"
    r"|[a-z]:\\\S*|/(?:etc|proc|dev|tmp|var|root|home|bin|usr)\b\S*",
    re.I,
)
# ps's BSD-style options (no dash): letters of its option set with an `x` among them, not an English word
_PS_BSD = re.compile(r"(?!(?:flux|flax|lax|wax)$)(?=[a-z]*x)[auxfwjlecvTH]{2,6}")
# an operand naming a path (dd's `if=/dev/zero`, `of=/dev/sda`)
_OPERAND = re.compile(r"[a-z]{1,8}=[\\/~.].*", re.I)
_USER_AT_HOST = re.compile(r"[\w.-]+@[\w-]+(?:\.[\w-]+)*(?::\S*)?")
_NUMBER = re.compile(r"\d+(?:\.\d+)?[smhd]?")
_FILE_ARG = re.compile(r"[\w.-]+\.(?:php\d?|phtml|jsp|jspx|aspx?|cgi|exe|bat|ps1|dll)$",
                       re.I)
_STOP = frozenset({";", "|", "||", "&", "&&", "\n", "\\n", "\\r", ")", "`", "'", '"', "}"})
# What scanners run after a separator to see whether a value reaches a shell: `expr` on literals (`;expr 4821 - 7356`,
# as `$((a*b))` is the shell's own arithmetic), `echo` of one token prose does not write (`;echo 4821;`,
# `\necho q7w2e9\n`), a network client sent to a host name of any top-level domain (`;ping x.oast.example`: the
# out-of-band probe; `_ADDRESS` knows a few domains only), a command given a substitution (`|| echo `123``)
_EXPR = re.compile(r"-?\d+(?:\s+(?:\\?[-+*/%<>=|&]|[<>!]=)\s+-?\d+)+")
_PROBE_TOKEN = re.compile(r"\d{3,}|(?=[a-z]*\d)(?=\d*[a-z])[a-z\d]{6,}", re.I)
_HOSTNAME = re.compile(r"(?:[a-z\d](?:[a-z\d-]{0,61}[a-z\d])?\.)+(?!(?:html?|php\d?|txt|jpe?g|png|gif|css|js|json|xml"
                       r"|pdf|zip|gz|tar|log|conf|ini|py|pl|rb|exe|dll|bat)\.?$)[a-z]{2,24}\.?", re.I)
NETWORK_CLIENTS = frozenset({"ping", "ping6", "nslookup", "dig", "host", "curl", "wget", "nc", "ncat", "netcat",
                             "telnet", "traceroute", "tracert", "whois", "ftp", "tftp", "ssh", "lynx", "socat"})
_LINE_END = frozenset({"", ";", "|", "||", "&", "&&", "\n", "\\n", "\r", "\\r", "#", ")", "`"})


_WORDS = "|".join(re.escape(c) for c in sorted(COMMANDS, key=len, reverse=True))
# The vocabulary in parts of 150 words (hyperscan compiles one alternation of a thousand words in seconds, parts
# in a fraction); PowerShell's cmdlets by their verbs (`Get-`, `Invoke-`): `_command_name` checks the whole name.
_CMDLET = re.compile(r"[a-z]+-[a-z]\w*")
_VOCAB_WORDS = sorted((w for w in VOCABULARY if not (w in WINDOWS_TOOLS and _CMDLET.fullmatch(w))), key=len,
                      reverse=True)
_VOCAB_PARTS = ["|".join(re.escape(c) for c in _VOCAB_WORDS[i : i + 150]) for i in range(0, len(_VOCAB_WORDS), 150)]
_VERBS = "|".join(sorted({w.split("-")[0] for w in WINDOWS_TOOLS if _CMDLET.fullmatch(w)}))
# control characters a parser drops (commix's SUB, skipfish's ETX: `command_injection` drops them too); not NUL,
# nor \x01, which bounds the prefilter's joined values
_CONTROL = "\x02-\x08\x0e-\x1f"
_SEP = rf"(?:[;|&`\n\r\x1a]|\$\(|[<>]\(|\\[nr])[{_CONTROL}]*"
# An option that makes a program run a command, given one (argument injection: git's `--open-files-in-pager=touch x`
# and `--upload-pack=`, tar's `--to-command=` and `--checkpoint-action=exec=`, rsync's `--rsh=`, zip's `-TT=`, glued
# to other letters as elFinder's `-TvTT=id`): the value reaches a program's argument list, not a shell
_OPTION_RUNS = re.compile(
    r"(?:^|[\s'\"=])(?:--(?:open-files-in-pager|upload-pack|receive-pack|use-compress-program|to-command|rsh"
    r"|unzip-command|rsync-path|index-filter|tree-filter|msg-filter|exec|checkpoint-action=exec)|-[a-z]*TT)\s*=\s*"
    rf"['\"]?(?:(?:[\w.-]*/)*(?:{_WORDS})(?:\.exe)?\b|\$\(|`)", re.I)
_ARTEFACT_ANCHORED += (("--", _OPTION_RUNS), ("TT=", _OPTION_RUNS))
# A command line Perl's two-argument `open` runs: a command alone with a pipe after it ending the value (`id|`, with
# a NUL before the pipe, `id%00|`, for a check that stops at the NUL)
_PIPE_OPEN = re.compile(r"\x00+(?=\|\s*$)")
# Interpreters and compilers that distributions install under versioned names too (`python3.11`, `gcc-12`).
VERSIONED = frozenset({"python", "python2", "python3", "perl", "php", "ruby", "lua", "node", "gcc", "cc", "clang",
                       "java", "pip", "pip3", "tclsh", "gdb"})
_VERSION = re.compile(r"([a-z]+\d?)-?\d+(?:\.\d+)*$")
_VERSIONED_WORDS = "|".join(sorted(VERSIONED, key=len, reverse=True))
# Files and programs an attacker reaches for, spelled as a glob in a value (`/e?c/pa[s]swd`, `/[e]tc/shadow`,
# `/usr/[a-z]in/bash`): a path with `?` or a bracket expression that only such a file matches is a command's
# argument or the command itself, written to slip past a filter (CRS 932130's bracket paths).
SENSITIVE_PATHS = (
    "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/hosts", "/etc/hostname", "/etc/issue",
    "/etc/sudoers", "/etc/crontab", "/etc/resolv.conf", "/proc/self/environ", "/proc/self/cmdline",
    "/proc/self/maps", "/root/.ssh/id_rsa", "/root/.ssh/authorized_keys", "/root/.bash_history",
    "/var/run/secrets/kubernetes.io/serviceaccount/token",
    *(f"{d}/{c}" for d in ("/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin")
      for c in ("sh", "bash", "dash", "zsh", "nc", "ncat", "netcat", "cat", "id", "whoami", "uname", "curl", "wget",
                "python", "python3", "perl", "php", "ruby", "busybox", "socat", "telnet", "base64", "chmod", "ls")),
)
# the system directories above them, which a bracket expression spells too (`/e[t]c`, `/[p]roc/self`)
SENSITIVE_DIRS = tuple(sorted({path.rsplit("/", k)[0] for path in SENSITIVE_PATHS for k in range(1, path.count("/"))}
                              | {"/etc", "/bin", "/sbin", "/usr", "/proc", "/root", "/var", "/dev", "/tmp", "/home"}))
_GLOB_PATH = re.compile(r"(?:/[\w.?*-]*(?:\[[^\]\s]{1,24}\][\w.?*-]*)*)+")
# where `_glob_path` looks: a bracket expression in a path, a `?` in a directory's name (`/e?c/`), or a `?` in the
# file name of a path below a system directory (`/etc/pa?swd`; not a URL's query, `/items?id=5`)
_GLOB_HINT = re.compile(r"/[\w.?*-]*\[[^\]\s]{1,24}\]|/[\w.*-]*\?[\w.?*-]*/"
                        r"|/(?:etc|proc|root|bin|sbin|usr|var)/(?:[\w.-]+/)*[\w.*-]*\?[\w.?*-]*(?:$|[\s;|&'\"`)])")


# A necessary condition for `command_injection` to look further (hyperscan-compatible, caseless): a command word
# or an evasion at a command position, a command line at the start of the value, a shell artefact. A '+' may
# stand for the space after a separator (`;+cat+/etc/passwd`: `command_injection` reads it as one).
GATE_PARTS = (
    rf"{_SEP}[\s'\"({{@!+:]*(?:{_WORDS})(?:\.exe)?\b",
    rf"{_SEP}[\s'\"({{@,]*[\w/.~%-]*(?:[/'\"\\^]|\$[\w@*{{(])",
    # an assignment or an unset variable before a command after a separator (`_SPACER`: `;A=1 id`, `;$a id`)
    rf"{_SEP}\s*(?:[A-Za-z_]\w{{0,30}}=\S*|\$\{{?[A-Za-z_]\w{{0,30}}\}}?)\s+[\w/'\"]",
    r"\w(?:``|[<>]\(\))\w",
    # a one-character bracket glob inside a word at a command position (`_evaded_command`: `;cur[l] x`)
    rf"(?:^|{_SEP})\s*[a-z][\w-]*\[\w\]",
    # a substitution of one word (`_WORD_SUBSTITUTION`)
    r"[$<>]\(\(?\s*[a-z][\w-]{1,30}\s*\)",
    # a special parameter as noise inside a word (`c$$at`, `/et$_c`: `_EMPTY_PARAM`)
    r"\w\$[$?!_@*-][\w/]",
    rf"^[\s'\"{_CONTROL}]*(?:{_WORDS})(?:\.exe)?(?:\s+\S|[<>|;&`])",
    # a versioned interpreter or compiler (`_command_name`) after a separator or as the value starts
    rf"(?:^|{_SEP})[\s'\"({{@!+]*(?:{_VERSIONED_WORDS})-?\d[\d.]*\b",
    rf"^[\s'\"{_CONTROL}]*(?:[a-z]:)?[/\\][\w./\\-]*(?:bin|system32)[/\\]",
    rf"^[\s{_CONTROL}]*(?:whoami|systeminfo|ipconfig|ifconfig|netstat|tasklist|uname)\s*$",
    rf"^\s*['\"][\s'\"]*(?:{_WORDS})\b",
    rf"\{{,?\s*(?:{_WORDS}|/)[\w/?*]*,",
    # a brace list with a word glued to it or escapes inside, at a command position (`_brace_evasion`)
    rf"(?:^|{_SEP})[\s'\":]*[\w$\\]*\{{[\w$\\'\"./-]*,[\w$\\'\",./?*#-]*\}}",
    # a command of the wider vocabulary after a separator or a quote break (`VOCABULARY`)
    *(rf"{_SEP}[\s'\"({{@!+]*(?:{part})\b" for part in _VOCAB_PARTS),
    *(rf"^\s*['\"][\s'\"]*(?:{part})\b" for part in _VOCAB_PARTS),
    rf"{_SEP}[\s'\"({{@]*(?:{_VERBS})-[a-z]",
    rf"^\s*['\"][\s'\"]*(?:{_VERBS})-[a-z]",
    # cmd.exe's case-blind `if/i` switch glued to the keyword
    r"^[\s'\"]*if/i\s",
    # a word spelled with quotes inside it as the value starts (`_SPLIT_FIRST`)
    r"^\s*\w*(?:'\w+'|\"\w+\")\w*(?:\s|$)",
    _ARTEFACT.pattern,
    *dict.fromkeys(pattern.pattern for _, pattern in _ARTEFACT_ANCHORED),
    # a path spelled as a glob with `?` or a bracket expression (`_glob_path`: only a sensitive file's counts)
    _GLOB_HINT.pattern,
    # a command spelled as a glob as the value starts (`/???/??t`: `_command_here` flags it anywhere)
    rf"^[\s'\"({{@{_CONTROL}]*/[\w/.?*\[\]-]*[?*\[]",
    # a command alone and a pipe ending the value, a NUL before it maybe (`_PIPE_OPEN`: `id%00|`)
    rf"^[\s'\"]*(?:[\w.-]*/)*(?:{_WORDS})\x00*\|\s*$",
    # a command named by a relative bin/ path as the whole value (`bin/visudo`)
    r"^\s*(?:[\w.-]+/)*s?bin/[\w.-]+\s*$",
    # a shell function definition (`_FORK_BOMB`); a variable the value assigns then runs (`_expand_assigned`)
    # stands at a command position, which the second part above already marks
    r"[\w.:-]\s*\(\)\s*[{(]",
    # a command right after an equals sign that starts the value or follows its first word (`_assigned_command`)
    rf"^\s*[\w.-]{{0,30}}=\s*(?:{_WORDS})\b",
    # a Windows command glued to cmd.exe's delimiters `@` / `,` after a separator (`&@ipconfig`, `&,dir`)
    rf"{_SEP}\s*[@,]+(?:{_WORDS})\b",
    # the builtins that run the next word as a command (`;command ifconfig`)
    rf"{_SEP}\s*(?:command|builtin)\s+(?:-[pvV]\s+)?(?:{_WORDS})\b",
    # a mail protocol command after a CR (`_mail_command`; not after a bare newline, which also separates the
    # values of one joined scan: every value's start would be tried)
    r"\r\n?[ \t]*(?:mail\s+from|rcpt\s+to|helo|ehlo|vrfy|expn|user|pass|apop|auth|data|quit|rset|noop|starttls|stat"
    r"|capa|stls|help|retr|dele|top|list|uidl|[a-z0-9.]{1,10}\s+(?:select|examine|search|fetch|store|append|list"
    r"|lsub|login|authenticate|capability|logout|noop|create|delete|rename|copy|uid|close|expunge|subscribe"
    r"|unsubscribe|status|check|idle|quit))\b",
)
GATE = "|".join(f"(?:{p})" for p in GATE_PARTS)


def _deobfuscate(text: str) -> str:
    """`text` with the shell evasions undone (quotes inside words, carets, empty parameters, brace lists)."""
    out = text
    if "^" in out:
        out = _CARET.sub("", _QUOTED_CARET.sub("", out) if '"^"' in out else out)
    if "='" in out or '="' in out:
        out = _QUOTED_ASSIGNMENT.sub(r"\1q", out)  # `;A='x y' ifconfig`: a prefix assignment, whatever its value
    if "[" in out:
        out = _TERMINAL.sub("", out)
    if "$" in out or "`" in out or "()" in out:
        out = _IFS.sub(" ", out)
        out = _EMPTY_PARAM.sub("", out)
    if "'" in out or '"' in out:
        out = _EMPTY_QUOTES.sub("", out)
        out = _QUOTED_TAIL.sub(r"\2", out)  # ca't': the quotes close at the word's end
        out = _INWORD_QUOTE.sub("", out)
        out = _QUOTED_FIRST.sub(r"\1\2", out)  # 'cscli' alerts list: the shell drops the quotes
    if "\\" in out:
        out = _ESCAPED_WORD.sub(lambda m: m.group(0).replace("\\", ""), out)  # i\f\c\o\n\f\i\g
        out = _unescape(out)
    if "/i" in out or "/I" in out:
        out = _IF_SWITCH.sub(r"\1 /i", out)
    if "{" in out and "," in out:
        out = _BRACE_LIST.sub(lambda m: f" {m.group(1)} {m.group(2).replace(',', ' ')} ", out)
    return out


def _unescape(text: str) -> str:
    """`text` with the backslashes inside words dropped (``c\\at``), but not those of Windows paths
    (``%SYSTEMROOT%\\system32\\ipconfig``, ``C:\\Windows\\System32``, ``\\\\srv\\share``)."""
    parts, last = [], 0
    for path in _WIN_PATH.finditer(text):
        parts += [_INWORD_BSLASH.sub("", text[last : path.start()]), path.group(0)]
        last = path.end()
    return "".join([*parts, _INWORD_BSLASH.sub("", text[last:])])


def _command_name(word: str) -> str | None:
    """The command a word names (``/usr/bin/id`` -> ``id``, ``NET.EXE`` -> ``net``), or None."""
    name = word.lower().rstrip(",")
    if "," in name and name.split(",", 1)[0] in WINDOWS:
        return name.split(",", 1)[0]  # `cmd,/c,dir`: cmd.exe reads a comma as a space
    if name == "%comspec%":
        return "cmd"  # cmd.exe by its environment variable
    if word != name and name.split("\\")[-1].split("/")[-1].removesuffix(".exe") not in WINDOWS:
        return None  # "More", "SC", "Make": only cmd.exe ignores case
    switched = _SWITCH_GLUED.fullmatch(name) if "/" in name else None
    if switched and switched.group(1) in WINDOWS:
        return switched.group(1)  # `cmd/c`, `dir/s`, `ipconfig/all`: cmd.exe reads a switch glued to the name
    if "/" in name or "\\" in name:
        if name.startswith(("http:", "https:", "//")):
            return None
        base = re.split(r"[\\/]", name)[-1]
        if not base:
            return None
        if any(c in base for c in "?*[") and name.startswith("/") and re.search(r"[a-z?]", base):  # /???/c?t
            return next((c for c in sorted(STRONG | {"cat", "id", "ls", "sh", "bash", "nc"})
                         if fnmatch.fnmatchcase(c, base)), None)
        if "/" in name and not re.search(r"(?:^|/)s?bin/|^\./|system32/", name) and not (
                ("?" in name or "*" in name or "[" in name) and _globbed_bin(name)):
            return None
        name = base
    for suffix in (".exe", ".com"):
        name = name.removesuffix(suffix)
    if name in COMMANDS or name in VOCABULARY:
        return name
    versioned = _VERSION.match(name)  # `python3.11`, `gcc-12`, `perl5.36`: how distributions name their builds
    return versioned.group(1) if versioned and versioned.group(1) in VERSIONED else None


_BIN_DIRS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin")
_SWITCH_GLUED = re.compile(r"([a-z][\w-]*?)(?:\.exe|\.com)?/(?:[a-z?]{1,3}|all)")


def _globbed_bin(path: str) -> bool:
    """Whether a path's directory, a glob, matches a binary directory (`/?in/cat`, `/usr/b*/id`)."""
    folder = re.sub(r"/(?:\.?/)+", "/", path).rsplit("/", 1)[0]  # `/s?in/./ifconfig`: `/./` and `//` name the same
    return any(fnmatch.fnmatchcase(d, folder) for d in _BIN_DIRS)


def _shaped(arg: str) -> bool:
    """An argument only a command line has: an option, a path, an address, a user at a host, a variable."""
    return bool(_OPTION.fullmatch(arg) or _PATHISH.fullmatch(arg) or _ADDRESS.fullmatch(arg) or _FILE_ARG.search(arg)
                or "*" in arg or arg.startswith("$") or _USER_AT_HOST.fullmatch(arg)
                or (_OPERAND.fullmatch(arg) is not None and _PATHISH.fullmatch(arg.split("=", 1)[1]) is not None))


def _args(tokens: list[str], start: int) -> tuple[list[str], str]:
    """The words after a command up to the next separator, and the token that ended them ('' at the end)."""
    words: list[str] = []
    quote = ""
    for tok in tokens[start : start + 24]:
        if quote:
            if tok == quote:
                quote = ""
            else:
                words.append(tok)
            continue
        if tok in ("'", '"'):
            if not words and tok not in tokens[tokens.index(tok, start) + 1 : start + 48]:
                return words, tok  # `;id'`: a quote nothing closes ends the command
            quote = tok
            continue
        if tok.startswith("#"):
            return words, "#"  # a comment: the rest of the line is not run
        if tok in _STOP or tok in OPENERS or tok.startswith(("<", ">")) or (tok[:1].isdigit() and ">" in tok):
            return words, tok
        words.append(tok)
    return words, ""


def _command_here(tokens: list[str], i: int, after: str) -> str | None:
    """Evidence when the tokens from `i` are a command line; `after` is what put us at a command position."""
    while i < len(tokens) and tokens[i] in ("'", '"', "(", "{", "@"):
        i += 1
    spaced = False  # `;A=1 ifconfig`: judged more strictly below ("dimension=not set;" is a key-value list)
    while after != "start" and i + 1 < len(tokens) and _SPACER.fullmatch(tokens[i]) and _command_name(tokens[i + 1]):
        i, spaced = i + 1, True
    if i >= len(tokens):
        return None
    if after != "start" and tokens[i][:1] in "$!" and tokens[i][1:] in STRONG:
        return tokens[i]  # `;$ifconfig`, `;!whoami`: a command word behind an expansion, the probe of a filter
    if after != "start" and tokens[i] in ("command", "builtin") and i + 1 < len(tokens):
        j = i + 1  # `;command ifconfig`, `;command -p id`: the builtins that run the next word as a command
        while j < min(len(tokens) - 1, i + 3) and tokens[j] in ("-p", "-v", "-V"):
            j += 1
        if _command_name(tokens[j]):
            return _command_here(tokens, j, after)
    if after != "start" and tokens[i][:1] in "@," and tokens[i].lstrip("@,") and \
            _command_name(tokens[i].lstrip("@,")) in WINDOWS:
        tokens = [*tokens[:i], tokens[i].lstrip("@,"), *tokens[i + 1 :]]  # cmd.exe: `&@ipconfig`, `&,dir`
    name = _command_name(tokens[i])
    if name is None:
        return None
    if tokens[i].startswith("/") and any(c in tokens[i] for c in "?*[") and "*" not in tokens[i]:
        return tokens[i]  # /???/c?t: a command spelled as a glob
    if name in VOCABULARY and after == "start":  # READMEs name them; `/usr/bin/tcpdump` alone is a file's path
        return None
    if name in WORDLIKE and after == "`":
        return None  # "`man --recode`": prose quotes commands in backticks (markdown)
    if name == "if" and _CMD_IF.match(" ".join(tokens[i + 1 : i + 16])):
        return " ".join(tokens[i : i + 10])  # cmd.exe: `if (a) == (b) cmd` (the parentheses end `_args`)
    words, end = _args(tokens, i + 1)
    options = 0  # `command -v nc`, `env -i nc`: the prefix's own options before the command
    while options < min(len(words) - 1, 3) and _PREFIX_OPTION.fullmatch(words[options]):
        options += 1
    if name in PREFIXES and words and _command_name(words[options]):
        found = _command_here(tokens, i + 1 + options, after)
        if found or after != "start":
            return found or tokens[i]
        # `time who` as the value starts: judged below, as a runner with its command
    redirect_or_pipe = end in ("|", "||", "&&") or end.startswith((">", "<")) or (end[:1].isdigit() and ">" in end)
    shaped = any(_shaped(w) for w in words[:6])
    if spaced and name not in STRONG and not shaped:
        return None
    subcommand = name in SUBCOMMANDS and bool(words) and (
        words[0].lower() in SUBCOMMANDS[name] or (name in ("for", "if") and words[0][:1] in "%/[(")
        or (name == "if" and any("==" in w or w.upper() in ("EQU", "NEQ", "LSS", "LEQ", "GTR", "GEQ") for w in words)))
    if name in RUNNERS and any(_command_name(w) in STRONG | BARE for w in words[:6] if not w.startswith("-")) and (
            after != "start" or len(words) == 1 or any(_shaped(w) for w in words[1:6])):
        subcommand = True  # `strace ifconfig`, `flock -u / whoami`, `time who` (not "time who knows")
    if after != "start" and name in SEPARATOR_SUBCOMMANDS and words and (
            words[0].lower() in SEPARATOR_SUBCOMMANDS[name]
            or (name == "service" and len(words) > 1 and words[1].lower() in SEPARATOR_SUBCOMMANDS[name])):
        subcommand = True
    if name in ("su", "sudo") and words and words[0] in ("root", "-", "-l", "-i", "-s"):
        subcommand = True  # `;su root`, `;sudo -i`
    if name == "ps" and words and _PS_BSD.fullmatch(words[0]):
        subcommand = True  # `ps aux`, `ps axjf`: BSD-style options take no dash
    if name in ("which", "whereis") and words and _command_name(words[0]):
        subcommand = True  # `which nc`
    if end in ("\n", "\\n", "\\r", "\r") and name in ADMIN_TOOLS and len(words) <= 4 and all(
            t in ("\n", "\\n", "\r", "\\r") for t in tokens[i + 1 + len(words):]):
        return " ".join([tokens[i], *words])  # `; ansible-console\n`: an administration tool's whole line
    if name == "alias" and words and _alias_definition(words):
        return " ".join([tokens[i], *words[:3]])  # alias x=curl, alias -p, alias 'x'=curl: defining commands
    if after == "start":
        if not words and name in START_ALONE:
            return tokens[i]
        if i == 0 and not words and end == "|" and len(tokens) == 2 and (name in STRONG or name in BARE):
            return tokens[i] + "|"  # `id|`: Perl's `open` runs a command a pipe ends
        if i == 0 and not words and name in LINE_ENDED and re.search(r"(?:^|/)s?bin/", tokens[i]):
            return tokens[i]  # bin/visudo as the whole value: a command named by its path (not a markdown span)
        if end in ("\n", "\\n", "\\r", "\r") and name in LINE_ENDED and len(words) <= 4 and all(
                t in ("\n", "\\n", "\r", "\\r") for t in tokens[i + 1 + len(words):]):
            return " ".join([tokens[i], *words])  # a whole command line ended by a newline
        if name in ("sleep", "ping", "timeout") and 0 < len(words) <= 2 and _NUMBER.fullmatch(words[-1]):
            return " ".join([tokens[i], *words])
        if name in SUBCOMMANDS and not subcommand:
            return None  # "net profit", "type of", "set up", "for all"
        if name in INTERPRETERS and words and words[0] in ("-e", "-c", "-r", "-E", "-command", "-enc"):
            return " ".join([tokens[i], *words[:3]])  # perl -e '...': inline code
        reaches = any(_TARGET.fullmatch(w.split("=", 1)[-1]) or _ADDRESS.fullmatch(w) for w in words[:6]) or (
            name in NETWORK_CLIENTS and any(w.count(".") >= 2 and _HOSTNAME.fullmatch(w) for w in words[:4]))
        if words and re.search(r"(?:^|/)s?bin/", tokens[i]):
            return " ".join([tokens[i], *words[:4]])  # /usr/bin/python3 ...: a program named by its path
        if not (subcommand or (redirect_or_pipe and words) or reaches or (shaped and name in STRONG)):
            return None
        if len(words) > 8 and not any(_OPTION.fullmatch(w) or _PATHISH.fullmatch(w) for w in words[:3]) and not (
                subcommand and sum(bool(_OPTION.fullmatch(w)) for w in words) >= 2):
            return None  # prose that starts with a command word (not `reg add "HKLM\\..." /v x /f`)
        return " ".join([tokens[i], *words[:4]])
    if name in SUBCOMMANDS and words and not subcommand and not shaped:
        return None  # "& net profit", "; if you", "| for details"
    lower = tokens[i] == tokens[i].lower()  # (cmd.exe reads `Ping` too, but prose writes "Echo 360", "Host Europe.de")
    if lower and _probe(tokens, i, name, words, end, after):
        return " ".join([tokens[i], *words[:4], end])
    if (not words and (name in BARE or end not in ("|", "||"))) and (name in BARE or name in STRONG):
        return tokens[i]
    if not words and name in ALONE_UNLISTED and after not in ("|", "&") and end not in ("|", "||"):
        return tokens[i]  # `;irb`, `;top`, not "hp|gen|top|women" (a list) or "Tom & top"
    if not words and end.startswith("<"):
        return tokens[i] + " " + end  # `cat<<<x`, `cat</etc/passwd`
    if words and (shaped or subcommand or redirect_or_pipe or name in STRONG):
        return " ".join([tokens[i], *words[:4]])
    if name in ("ping", "sleep", "timeout") and any(_NUMBER.fullmatch(w) for w in words[:3]):
        return " ".join([tokens[i], *words[:3]])
    if after in ("$(", "`", "<(", ">(") and end in (")", "`"):
        return " ".join([tokens[i], *words[:4]])  # a whole substitution: `$(cat x)`
    return None


def _probe(tokens: list[str], i: int, name: str, words: list[str], end: str, after: str) -> bool:
    """Whether the command at `i` (after a separator) is a scanner's probe: `expr` on literals, `echo` of one
    token nobody writes in prose ending its line, a network client sent to a host name, or a command given a
    substitution that closes its line (`;echo `id``; not markdown's "use `make`", which `after` marks)."""
    if name == "expr":
        return 3 <= len(words) <= 9 and _EXPR.fullmatch(" ".join(words)) is not None
    if name in ("echo", "printf") and len(words) == 1 and end in _LINE_END and _PROBE_TOKEN.fullmatch(words[0]):
        return True
    if name in NETWORK_CLIENTS and any(_HOSTNAME.fullmatch(w) for w in words[:4]):
        return True
    if end in ("`", "$(") and after != "`" and len(words) <= 3:
        k = tokens.index(end, i + 1)
        close = "`" if end == "`" else ")"
        j = tokens.index(close, k + 2) if close in tokens[k + 2 : k + 30] else 0
        return j > 0 and tokens[k + 1] != close and (j + 1 == len(tokens) or tokens[j + 1] in _LINE_END)
    return False


# A mail protocol command on a line an injected CR LF starts (SMTP, POP3, IMAP: the value reaches a mail
# server's command stream, as CRS's 932 mail rules see it). Single-word and user/password verbs count in upper
# case only; an IMAP line needs a tag with a digit, an upper-case command or arguments only IMAP has.
_MAIL_LINE = re.compile(
    r"(?i:mail\s+from|rcpt\s+to)\s*:.*|(?:HELO|EHLO|VRFY|EXPN|USER|PASS|APOP|AUTH)\s+\S.*"
    r"|(?:DATA|QUIT|RSET|NOOP|STARTTLS|STAT|CAPA|STLS|HELP)(?:\s+\S+)?"
    r"|(?i:retr|dele|top|list|uidl)\s+\d+(?:\s+\d+)?"
    r"|(?P<tag>[A-Za-z0-9.]{1,10})\s+(?P<cmd>(?i:select|examine|search|fetch|store|append|list|lsub|login"
    r"|authenticate|capability|logout|noop|create|delete|rename|copy|uid|close|expunge|subscribe|unsubscribe"
    r"|status|check|idle|quit))\b(?P<rest>.*)"
)
_IMAP_ARGS = re.compile(r"FLAGS|INBOX|CHARSET|\{\d+\}|\(\\\w+|\"[^\"]*\"|\b(?:PLAIN|LOGIN|XOAUTH2|CRAM-MD5)\b", re.I)
_MAIL_BREAK = re.compile(r"\r\n?")


def _mail_command(text: str) -> str | None:
    """A mail protocol command line after a CR or CRLF in `text` (the protocols' line end), or None."""
    for line in _MAIL_BREAK.split(text)[1:]:
        line = line.split("\n", 1)[0].strip(" \t")
        found = _MAIL_LINE.fullmatch(line) if line else None
        if found is None:
            continue
        tag, cmd = found.group("tag"), found.group("cmd")
        if tag is None or any(c.isdigit() for c in tag) or cmd.isupper() or _IMAP_ARGS.search(found.group("rest")):
            return line[:80]
    return None


def _alias_definition(words: list[str]) -> bool:
    """Whether the words after `alias` define one (``x=curl``, ``'x'=curl``, ``x='ls -al'``) or list them
    (``-p``): the name assigned a command, or the definition the whole argument (``alias a=b``)."""
    if re.fullmatch(r"[-+][a-z]+\+?", words[0]):
        return True
    joined = "".join(words[:2])
    if "=" not in joined or not re.match(r"[\w.!%,@-]+=", joined):
        return False
    return len(words) == 1 or _command_name(joined.split("=", 1)[1].strip("'\"")) is not None


def _expand_assigned(text: str) -> str:
    """`text` with the variables it assigns itself (``a=nc``) expanded where it uses them (``$a``, ``${a}``)."""
    values = {name: " " if value == "\\ " else value.strip("'\"") for name, value in _ASSIGNMENT.findall(text)}
    if not values:
        return text
    return re.sub(r"\$\{?([A-Za-z_]\w{0,15})\}?", lambda m: values.get(m.group(1), m.group(0)), text)


def _brace_command(text: str, brace: re.Match[str]) -> bool:
    """Whether a brace list (``{id,}``, ``{cat,/etc/passwd}``) at a command position makes a command line:
    its first item a command and the rest empty, an option or a path (``{id,name}`` in a query stays clean)."""
    before = text[: brace.start()].rstrip(" '\"")
    if before and before[-1] not in ";|&`\n\r($":
        return False
    name = _command_name(brace.group(1))
    rest = [w for w in brace.group(2).split(",") if w]
    return name is not None and (not rest or name in STRONG or any(_shaped(w) for w in rest))


def _brace_item(item: str) -> str:
    """A brace-list item as the shell reads it: quotes (``$'x'``, ``'x'``) and backslashes dropped, short unset
    variables (``$u``) empty."""
    item = _BRACE_QUOTED.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), item)
    return _BRACE_NOISE.sub("", item)


def _brace_evasion(text: str) -> str | None:
    """A brace expansion at a command position that spells a command only once expanded: a word glued to the
    list (``{l,-lh}s`` -> ``ls -lhs``, ``c{a,oun}t`` -> ``cat``), an empty first item (``{,ifconfig}``) or an
    item the shell unquotes (``{n$u\\c$u,-nlvp,777}`` -> ``nc -nlvp 777``); ``{id,name}`` stays clean."""
    for brace in _BRACE_AFFIX.finditer(text):
        before = text[: brace.start()].rstrip(" '\"")
        if before and before[-1] not in ";|&`\n\r($":
            continue
        raw = brace.group(2).split(",")
        items = [_brace_item(x) for x in raw]
        prefix, suffix = _brace_item(brace.group(1)), _brace_item(brace.group(3))
        words = [w for w in (prefix + x + suffix for x in items) if w]
        if words and _command_name(words[0]) and (prefix or suffix or not raw[0] or items != raw):
            return brace.group(0)
    return None


# A word at a command position with an evasion inside it, between its letters: empty or one-letter quotes, a
# backslash, a one-character bracket glob, an empty special parameter (`py""thon`, `p"y"thon`, `cur[l]`, `c\\at`,
# `wh$@oami`). Nobody types a program's name so but to slip it past a filter, so its arguments do not matter.
_EVADED_WORD = re.compile(r"(?:^|(?<=[;|&\n`(]))\s*([a-z][\w-]*(?:(?:''|\"\"|'\w'|\"\w\"|\\(?=\w)|\[\w\]|\$[@*\d])+"
                          r"[\w-]*)+)(?![\w'\"\\\[$])", re.I)
_ONE_CHAR_SET = re.compile(r"\[(\w)\]")
# `_EVADED_WORD`'s marks alone, a necessary condition searched first (a character class before them makes the
# search six times slower)
_EVASION_INSIDE = re.compile(r"''|\"\"|'\w'|\"\w\"|\\\w|\[\w\]|\$[@*\d]")


def _evaded_command(text: str) -> str | None:
    """A program's name spelled with an evasion inside it at a command position (`;py""thon`), or None."""
    for found in _EVADED_WORD.finditer(text):
        word = _ONE_CHAR_SET.sub(r"\1", found.group(1))
        word = re.sub(r"''|\"\"|['\"\\]|\$[@*\d]", "", word)
        if _command_name(word):
            return found.group(1)
    return None


# Zero-width characters (space, joiners, word joiner, BOM): invisible, so an attacker's filler inside a command.
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")
# A '+' between a word (or a variable) and a path: the space of `cat+/etc/passwd` beside real spaces.
_PLUS_GLUED = re.compile(r"[\w$]\+[/~]")
_BSLASH_RUN = re.compile(r"\\{2,}")


def _glob_path(text: str) -> str | None:
    """A path spelled as a glob (with `?` or a bracket expression) that matches a sensitive file, or whose bracket
    expressions spell a system directory, or None."""
    for found in _GLOB_PATH.finditer(text):
        path = found.group(0)
        if "?" not in path and "[" not in path:
            continue
        pattern = re.sub(r"\[[^\]]*\]", lambda m: m.group(0).replace("/", ""), path)  # `[e//]`: no slash in a set
        pattern = re.sub(r"/{2,}", "/", pattern)
        if any(fnmatch.fnmatchcase(sensitive, pattern) for sensitive in SENSITIVE_PATHS):
            return path
        if "[" in pattern:  # `/e[t]c`, `/[p]roc/self/x`: the directories up to the last bracket expression
            steps = pattern.split("/")
            last = max(k for k, step in enumerate(steps) if "[" in step)
            if any(fnmatch.fnmatchcase(folder, "/".join(steps[: last + 1])) for folder in SENSITIVE_DIRS):
                return path
    return None


_CONTROL_CHAR = re.compile(f"[{_CONTROL}]")


@lru_cache(maxsize=4096)  # user agents, ids and form values repeat
def command_injection(value: str) -> str | None:
    """The command line a shell would run from `value` (evidence), or None."""
    if not value.isascii() and _INVISIBLE.search(value):
        value = _INVISIBLE.sub("", value)  # `cat /et\u200b?/pa??wd`: zero-width characters a filter would not see
    raw = value
    if _CONTROL_CHAR.search(value):
        value = _CONTROL_CHAR.sub("", value)  # `&\x1aid`, `\x03 /bin/sleep 5`: characters a parser drops
    if "\x00" in value and _PIPE_OPEN.search(value):
        value = _PIPE_OPEN.sub("", value)  # `id\x00|`
    found = _command_line(value[:8192])
    spaced = " " in value or "\t" in value  # (CR and LF are separators: `\r\necho+x` has no space)
    if found is None and "+" in value and (not spaced or _PLUS_GLUED.search(value)):
        # `;cat+/etc/passwd` with its '+' sent as %2B: an application that decodes the value once more (or
        # hands it to a CGI script, which reads '+' as a space) runs it with spaces (`; cat$u+/etc$u/passwd`)
        found = _command_line(value[:8192].replace("+", " "))
    if found is None and "[" in value and _TERMINAL.search(value):
        # `\033[2curl ...`: the escape's final letter may be the command's first (`ESC [ 2` then `curl`)
        found = _command_line(_TERMINAL_OPEN.sub("", value[:8192]))
    if found is None and "\\\\" in value:
        found = _command_line(_BSLASH_RUN.sub("\\\\", value[:8192]))  # `c\\a\\t`: escaped once more (JSON, C)
    if found is None and _CASED.search(value[:8192]) and any(
            w.lower() in COMMANDS or w.lower() in VOCABULARY or w.lower() in PREFIXES
            for w in _CASED.findall(value[:8192])):
        found = _command_line(value[:8192].lower())  # `'TiMe Sh -c whoami`: read as a filter that folds case
    if found is None and ("::" in raw or "\x00" in raw or "\x1a" in raw or not raw.isascii()) and \
            _TERMINATOR.search(raw):
        # what ends a command line for the program that reads it (shelling's terminators and separators): a NUL (a C
        # string's end), an emoji (invalid in the program's encoding), cmd.exe's `::` comment ending the value, SUB
        # (0x1a) as cmd.exe's separator (`x\x1aping -n 25 127.0.0.2\x1a`), `::` glued after `&` (`&::ping`)
        found = _command_line(_CONTROL_CHAR.sub("", _TERMINATOR.sub(_terminated, raw[:8192])))
    return found


# What `command_injection`'s last reading takes for the end of a command line or for nothing
_TERMINATOR = re.compile("[\x00\x1a]|[\U00010000-\U0010ffff]|::(?=\\s*$)|(?<=&)::")


def _terminated(found: re.Match[str]) -> str:
    return "" if found.group(0) == "::" and found.start() > 0 and found.string[found.start() - 1] == "&" else "\n"


def _command_line(text: str) -> str | None:
    """`command_injection` on one reading of the value."""
    artefact = _ARTEFACT.search(text)
    if artefact is None:
        for anchor, pattern in _ARTEFACT_ANCHORED:
            if anchor in text:
                artefact = pattern.search(text)
                if artefact:
                    break
    if artefact:
        return text[max(0, artefact.start() - 20) : artefact.end() + 20]
    if "/" in text and ("?" in text or "[" in text) and _GLOB_HINT.search(text):
        globbed = _glob_path(text)
        if globbed:
            return globbed
    if "\r" in text:
        mail = _mail_command(text)
        if mail:
            return mail
    if "$(" in text or "<(" in text or ">(" in text:
        for sub in _WORD_SUBSTITUTION.finditer(text):
            before = text[: sub.start()]
            placed = not before.strip() or before.rstrip()[-1] in ";|&`(=\n\r"
            if sub.group(1) not in _JS_WORDS and (placed or before[-1] in "/'\"" or before[-1].isalnum()):
                return sub.group(0)  # at a command position or glued to a word; not "Pay $(price) now"
    bomb = _FORK_BOMB.search(text) if "(" in text else None
    if bomb:
        return bomb.group(0)
    if "=" in text and "$" in text:
        text = _expand_assigned(text)
    brace = _BRACE_LIST.search(text) if "{" in text else None
    if brace and _brace_command(text, brace):
        return brace.group(0)
    affix = _brace_evasion(text) if "{" in text and "," in text else None
    if affix:
        return affix
    if _EVASION_INSIDE.search(text):
        evaded = _evaded_command(text)
        if evaded:
            return evaded
    split = _SPLIT_FIRST.match(text) if "'" in text or '"' in text else None
    if split and _command_name(split.group(1).replace("'", "").replace('"', "")):
        return split.group(0).strip()
    clean = _deobfuscate(text)
    spans = [(m.group(0), m.start()) for m in _TOKEN.finditer(clean)]
    tokens = [tok for tok, _ in spans]
    if not tokens:
        return None
    found = _command_here(tokens, 0, "start")
    if found:
        return found
    if tokens[0] in ("'", '"') and len(tokens) > 1:  # a quote break: `' whoami`, `";id;"`
        found = _command_here(tokens, 1, "quote")
        if found:
            return found
    lead = 1 if tokens[0] in ("'", '"') else 0
    if tokens[lead : lead + 1] and tokens[lead] in _LEADING and lead + 1 < len(tokens):
        found = _leading_command(tokens, lead + 1)
        if found:
            return found
    for k, tok in enumerate(tokens[:-1]):
        if tok in ("(", "{") and tokens[k - 2 : k] == ["(", ")"]:
            found = _command_here(tokens, k + 1, tok)  # a function's body: `a() ( ifconfig; ); a`
            if found:
                return found
        if tok in SEPARATORS or tok in ("$(", "`", "<(", ">(", "$(("):
            start = spans[k][1]
            inline = tok == "`" and k > 0 and start > 0 and (clean[start - 1].isspace() or clean[start - 1] == "`") \
                and tokens[k - 1] not in SEPARATORS  # `; `ls``: a substitution, not a markdown span
            found = _command_here(tokens, k + 1, "start" if inline else tok)  # "use `make -j4` to": markdown
            if found:
                return found
    return _assigned_command(clean) if "=" in clean else None


# A separator the value starts with (after a quote maybe): an injection starts a value so, and the command after it
# counts whatever its arguments (`;vi x`, `|ls (x`, `\nuname foo`); not `&`, which a fragment of a query string
# starts with (`&sort`), nor a command that is an English word (`; done`, `| view`, `\ntime is money`, `; touch
# base`: a text area's first line, a breadcrumb's), which the usual reading after a separator judges instead.
_LEADING = frozenset({";", "|", "||", "&&", "\n", "\\n"})
PROSE_WORDS = frozenset({
    "cat", "type", "echo", "ping", "sleep", "timeout", "find", "head", "tail", "more", "less", "set", "kill", "copy",
    "move", "touch", "sort", "file", "stat", "date", "time", "start", "call", "source", "for", "if", "free", "top",
    "history", "alias", "export", "nice", "watch", "script", "shutdown", "reboot", "halt", "who", "w", "groups",
    "last", "finger", "service", "host", "fetch", "wall", "make", "jobs", "mail", "which", "cut", "strings", "diff",
    "net", "exec", "eval", "column", "tee", "dig", "trap", "flock", "perf", "mount", "split", "print",
})


def _leading_command(tokens: list[str], i: int) -> str | None:
    """The command right after the separator a value starts with (`tokens[i - 1]`), or None."""
    name = _command_name(tokens[i])
    if name is None or name in WORDLIKE or name in PROSE_WORDS or tokens[i] != tokens[i].lower():
        return None
    if tokens[i - 1] == "|" and "|" in tokens[i + 1 : i + 4]:
        return None  # `| date | price |`: a table's header
    return " ".join(tokens[i - 1 : i + 4])


# A word in mixed case, neither Title nor UPPER (`TiMe`, `wHoAmI`): a command spelled so is a probe of a filter that
# compares case-sensitively (CRS folds case); prose and cmd.exe write Title or UPPER case.
_CASED = re.compile(r"\b[A-Za-z]*[a-z][A-Z][A-Za-z]*\b")
_EQ_PREFIX = re.compile(r"\s*([\w.-]{1,30})?=\s*")


def _assigned_command(clean: str) -> str | None:
    """A command right after an equals sign (CRS's `=` prefix): as the value starts (`=ls -la`, `=id`), or after
    the value's first word when it is a command nobody names in prose, alone or with a command line's arguments
    (`x=ifconfig`, `a=uname -a`; not `sort=uptime`, `type=id`)."""
    eq = _EQ_PREFIX.match(clean)
    if eq is None:
        return None
    tokens = [t.group(0) for t in _TOKEN.finditer(clean, eq.end())]
    name = _command_name(tokens[0]) if tokens else None
    if name is None:
        return None
    words, _ = _args(tokens, 1)
    if eq.group(1) and not (name in START_ALONE or (name in STRONG and any(_shaped(w) for w in words[:6]))):
        return None
    return _command_here(tokens, 0, "=")
