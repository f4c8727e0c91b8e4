#!/usr/bin/env python3
# guests/check-guest.py NAME GEN [--vga WxH]: boots guests/out/NAME.vhdx with plain QEMU (TCG) as
# generation GEN (1: pc + SeaBIOS + IDE, 2: q35 + OVMF + virtio-scsi), prints time to the firmware,
# the loader, the kernel and READY (plus QEMU CPU seconds), then checks the guest agent (ping,
# exec uname -m), the counter, /data, a PNG screendump (with --vga) and system_powerdown.
# A developer tool (python3), not part of the build. Work files: guests/build/check/.
import json, os, socket, subprocess, sys, time, shutil, struct, base64, threading
name, gen = sys.argv[1], int(sys.argv[2])
vga = sys.argv[sys.argv.index('--vga') + 1] if '--vga' in sys.argv else None
G = os.path.dirname(os.path.abspath(__file__))
T = os.path.join(G, 'build', 'check')
d = f'{T}/{name}-g{gen}' + (f'-{vga}' if vga else '')
shutil.rmtree(d, ignore_errors=True); os.makedirs(d)
shutil.copy(os.path.join(G, 'out', f'{name}.vhdx'), f'{d}/disk.vhdx')
ser = f'{d}/serial.sock'
args = ['qemu-system-x86_64', '-machine', 'pc' if gen == 1 else 'q35', '-nodefaults', '-accel', 'tcg,thread=multi', '-m', '256',
        '-chardev', f'socket,id=ser0,path={ser},server=on,wait=on', '-serial', 'chardev:ser0', '-display', 'none',
        '-qmp', f'unix:{d}/qmp.sock,server=on,wait=off',
        '-device', 'virtio-serial-pci', '-chardev', f'socket,id=qga0,path={d}/qga.sock,server=on,wait=off',
        '-device', 'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
        '-blockdev', f'driver=file,filename={d}/disk.vhdx,node-name=f0', '-blockdev', 'driver=vhdx,file=f0,node-name=d0']
if vga:
    w, h = vga.split('x'); args += ['-device', f'VGA,edid=on,xres={w},yres={h}']
else:
    args += ['-vga', 'none']
if gen == 1:
    args += ['-device', 'ide-hd,drive=d0,bus=ide.0']
else:
    shutil.copy('/usr/share/OVMF/OVMF_VARS_4M.fd', f'{d}/vars.fd')
    args += ['-drive', 'if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd',
        '-drive', f'if=pflash,format=raw,file={d}/vars.fd', '-device', 'virtio-scsi-pci,id=scsi0', '-device', 'scsi-hd,drive=d0,bus=scsi0.0']
t0 = time.time()
p = subprocess.Popen(args, stderr=subprocess.DEVNULL)
s = None
for i in range(200):
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(ser); break
    except OSError: time.sleep(0.02)
log = open(f'{d}/serial.log', 'w')
buf = b''; marks = {}
def mark(k):
    if k not in marks: marks[k] = time.time() - t0
s.settimeout(90)
ready = None
while ready is None:
    data = s.recv(4096)
    if not data: break
    buf += data
    log.write(data.decode('latin1')); log.flush()
    if b'SYSLINUX' in buf: mark('loader')
    if b'Loading /initrd.img...ok' in buf or b'Loading /initrd.img... ok' in buf: mark('loaded')
    if b'Linux version' in buf: mark('kernel')
    for l in buf.split(b'\n')[:-1]:
        if l.startswith(b'VISOR-GUEST-READY'):
            ready = l.decode().strip(); mark('ready')
            st = open(f'/proc/{p.pid}/stat').read().rsplit(')', 1)[1].split()
            marks['qemuCpu'] = (int(st[11]) + int(st[12])) / os.sysconf('SC_CLK_TCK')
print(f'{name} gen{gen} vga={vga}: ' + ' '.join(f'{k}={v:.2f}' for k, v in marks.items()))
print('  ', ready)
def drain():
    while True:
        try: data = s.recv(4096)
        except Exception: break
        if not data: break
        log.write(data.decode('latin1')); log.flush()
threading.Thread(target=drain, daemon=True).start()
def connect(path, greet=False):
    c = socket.socket(socket.AF_UNIX); c.connect(path); c.settimeout(30)
    f = c.makefile('rwb')
    if greet:
        f.readline(); f.write(b'{"execute":"qmp_capabilities"}\n'); f.flush(); f.readline()
    return f
def call(f, obj):
    f.write((json.dumps(obj) + '\n').encode()); f.flush()
    while True:
        l = f.readline()
        if not l: raise Exception('eof')
        r = json.loads(l)
        if 'return' in r or 'error' in r: return r
def sh(f, path, argv):
    pid = call(f, {"execute": "guest-exec", "arguments": {"path": path, "arg": argv, "capture-output": True}})['return']['pid']
    for i in range(100):
        st = call(f, {"execute": "guest-exec-status", "arguments": {"pid": pid}})['return']
        if st['exited']: return st
        time.sleep(0.1)
try:
    t1 = time.time()
    qf = connect(f'{d}/qga.sock')
    print('   guest-ping', call(qf, {"execute": "guest-ping"}), f'{time.time()-t1:.2f}s')
    st = sh(qf, '/bin/uname', ['-m'])
    print('   guest-get-osinfo', call(qf, {"execute": "guest-get-osinfo"})['return'].get('pretty-name'))
    print('   guest-exec uname -m ->', base64.b64decode(st.get('out-data', '')).decode().strip(), 'exitcode', st['exitcode'])
    c1 = base64.b64decode(sh(qf, '/bin/cat', ['/run/counter'])['out-data']).decode().strip(); time.sleep(1)
    c2 = base64.b64decode(sh(qf, '/bin/cat', ['/run/counter'])['out-data']).decode().strip()
    print('   counter', c1, '->', c2, 'after 1 s')
    st = sh(qf, '/bin/sh', ['-c', 'mount | grep /data; cat /run/boot-trace | tr "\\n" " "; echo; cat /sys/class/graphics/fb0/virtual_size 2>/dev/null; cat /sys/class/graphics/fb0/name 2>/dev/null'])
    print('   ' + base64.b64decode(st.get('out-data', '')).decode().strip().replace('\n', '\n   '))
    mf = connect(f'{d}/qmp.sock', greet=True)
    if vga:
        png = f'{d}/screen.png'
        print('   screendump', call(mf, {"execute": "screendump", "arguments": {"filename": png, "format": "png"}}))
        with open(png, 'rb') as fh: hdr = fh.read(24)
        print('   png size', struct.unpack('>II', hdr[16:24]))
    t2 = time.time()
    print('   system_powerdown', call(mf, {"execute": "system_powerdown"}))
    rc = p.wait(30)
    print(f'   qemu exited rc={rc} {time.time()-t2:.2f}s after system_powerdown')
finally:
    if p.poll() is None: p.kill()
