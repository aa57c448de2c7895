public class Main {
  public static void main(String[] args) throws Exception {
    Process p = Runtime.getRuntime().exec(new String[] {"/bin/true"});
    System.out.println(p.waitFor());
  }
}
